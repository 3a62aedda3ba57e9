"""The streaming pipeline, the default realtime engine, fully offline:
VAD on the caller's frames → end of turn after a silence → STT on the utterance → the brain's reply streamed
sentence by sentence → TTS per sentence → resampled to the call rate → queued for playback as soon as it
exists. The greeting comes first, from the TTS cache.

Barge-in: speech confirmed while the secretary talks (or while a reply is still being thought up) stops the
playback, drops the rest of the reply, and the transcript keeps what the caller actually heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from bridge.engines.base import CallContext
from bridge.prompts import MESSAGE_TAKEN, PromptAudio, beep
from secretary.calls.models import CallPhase, TurnRecord
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.brain import ChatMessage
from secretary.conversation.conversation import Conversation, ReplyDone, Sentence
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import Transcript
from secretary.speech.sentences import split_first_clause
from secretary.speech.utterances import (
    SegmentEvent,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    UtteranceEnded,
    UtteranceSegmenter,
)
from secretary.speech.vad import SileroVad
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class _Turn:
    """The reply in progress, so a barge-in can write down what it cut."""

    tag: str
    audio: Pcm
    caller_text: str = ""
    spoken: list[str] = field(default_factory=list)
    record: TurnRecord | None = None


@dataclass(frozen=True, slots=True)
class _ReplyOver:
    task: asyncio.Task[bool]


class PipelineEngine:
    name = "pipeline"

    def __init__(self, runtime: Runtime, config: SecretaryConfig, sample_rate: int, prompts: PromptAudio) -> None:
        vad_settings = runtime.settings.bridge.vad
        vad = SileroVad(runtime.models.silero_vad(), sample_rate, vad_settings.threshold, vad_settings.min_level_dbfs)
        self._segmenter = UtteranceSegmenter(vad, sample_rate, vad_settings)
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._prompts = prompts
        self._stt = runtime.providers.stt(config)
        self._tts = runtime.providers.tts(config)
        self._conversation = Conversation(config, runtime.providers.brain(config))
        self._events: asyncio.Queue[SegmentEvent | _ReplyOver] = asyncio.Queue()
        self._reply: asyncio.Task[bool] | None = None
        self._turn: _Turn | None = None
        self._call: CallContext | None = None
        self._carry: Pcm | None = None  # a turn cut before the caller heard any of its reply
        self._early: asyncio.Future[Transcript] | None = None  # STT started on a pause, before the turn ended
        self._finishing = False

    def feed(self, pcm: bytes) -> None:
        if self._call is None:
            return
        for event in self._segmenter.feed(pcm):
            self._events.put_nowait(event)

    async def run(self, call: CallContext) -> None:
        self._call = call
        greeting = self._conversation.opening()
        call.playback.enqueue(await self._prompts.audio(self._tts, greeting, self._rate), greeting, "greeting")
        while True:
            event = await self._events.get()
            if isinstance(event, _ReplyOver):
                if event.task is not self._reply:
                    continue
                self._reply = None
                if event.task.cancelled():
                    continue
                error = event.task.exception()
                if error is not None:
                    raise error
                if event.task.result():  # the conversation is over
                    return
            elif self._finishing:
                continue  # the farewell or the transfer announcement plays to the end
            elif isinstance(event, SpeechStarted):
                call.caller_active()
                if call.playback.speaking or self._reply is not None:
                    await self._barge_in(call)
            elif isinstance(event, SpeechPaused):
                if self._carry is None and self._reply is None:
                    self._early = self._transcribe(event.audio)
            elif isinstance(event, SpeechResumed):
                self._drop_early()
            elif isinstance(event, UtteranceEnded):
                call.caller_active()
                if self._reply is not None:  # the caller went on talking: answer the whole of it
                    await self._barge_in(call)
                self._start_reply(event.audio)

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()

    def _transcribe(self, audio: Pcm) -> asyncio.Future[Transcript]:
        hints = [name for t in self._config.directory for name in t.spoken_names]
        return asyncio.ensure_future(self._stt.transcribe(audio, self._config.language, hints))

    def _start_reply(self, audio: Pcm) -> None:
        early, self._early = self._early, None
        if self._carry is not None:
            audio, self._carry = self._carry + audio, None
            if early is not None:
                early.cancel()
                early = None
        task = asyncio.create_task(self._answer(audio, early), name="pipeline-reply")
        task.add_done_callback(lambda t: self._events.put_nowait(_ReplyOver(t)))
        self._reply = task

    async def _barge_in(self, call: CallContext) -> None:
        task, self._reply = self._reply, None
        if task is not None and not task.done():
            task.cancel()  # it can't queue more audio: it only runs again to raise CancelledError
        interruption = await call.playback.interrupt()  # stop first: every millisecond here is heard
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        turn, self._turn = self._turn, None
        if turn is None:
            if interruption.cut.get("greeting"):
                call.note_barge_in()
                self._conversation.note_interrupted(interruption.heard.get("greeting", ""))
            return
        heard = interruption.heard.get(turn.tag, "")
        cut = interruption.cut.get(turn.tag, "")
        if not cut and turn.record is not None:
            return  # the reply had been heard to the end: nothing was interrupted
        if turn.record is None and not heard:
            self._carry = turn.audio  # nothing of the reply reached the caller: answer both parts together
            return
        call.note_barge_in()
        log.info("barge_in", heard=heard, cut=cut)
        if turn.record is not None:
            turn.record.heard_text = heard
            self._conversation.note_interrupted(heard)
        else:  # cut while still being generated: the conversation never saw the reply end
            said = " ".join(turn.spoken)
            self._conversation.history.append(ChatMessage(role="user", content=turn.caller_text))
            self._conversation.history.append(
                ChatMessage(role="assistant", content=f"{heard} [interrupted by the caller]")
            )
            call.record_turn(
                TurnRecord(
                    index=len(call.state.turns) + 1,
                    at=datetime.now(UTC),
                    caller_text=turn.caller_text,
                    secretary_text=said,
                    heard_text=heard,
                    brain=None,
                )
            )

    async def _answer(self, audio: Pcm, early: asyncio.Future[Transcript] | None = None) -> bool:
        """One turn; returns True when it ended the conversation."""
        call = self._call
        assert call is not None
        call.awaiting_reply()
        started = time.perf_counter()
        tag = f"turn-{len(call.state.turns) + 1}"
        turn = _Turn(tag, audio)
        self._turn = turn
        transcript = await (early if early is not None else self._transcribe(audio))
        call.state.add_usage(f"stt_seconds.{transcript.provider}", transcript.audio_seconds)
        turn.caller_text = transcript.text
        stt_done = time.perf_counter()

        if call.state.phase is CallPhase.TAKING_MESSAGE:
            return await self._message_taken(call, turn, started, _ms(stt_done - started))

        first_sentence: float | None = None
        first_audio: float | None = None
        async for event in self._conversation.stream(transcript.text):
            if isinstance(event, Sentence):
                first_sentence = first_sentence or time.perf_counter()
                turn.spoken.append(event.text)
                call.state.add_usage(f"tts_chars.{self._tts.name}", len(event.text))
                parts = split_first_clause(event.text) if len(turn.spoken) == 1 else [event.text]
                for part in parts:
                    async for pcm in self._tts.stream(part):
                        call.playback.enqueue(pcm.resampled(self._rate).data, part, tag)
                        if first_audio is None:
                            first_audio = time.perf_counter()
                            call.reply_started()
            elif isinstance(event, ReplyDone):
                reply = event.reply
                for provider in reply.failed:
                    self._runtime.metrics.fallbacks.labels("brain", provider).inc()
                    call.state.add_usage(f"fallbacks.brain.{provider}")
                done = time.perf_counter()
                record = TurnRecord(
                    index=len(call.state.turns) + 1,
                    at=datetime.now(UTC),
                    caller_text=transcript.text,
                    secretary_text=reply.text,
                    action=reply.action,
                    brain=reply.brain,
                    stt_ms=_ms(stt_done - started),
                    brain_ms=_ms((first_sentence or done) - stt_done),
                    tts_ms=_ms((first_audio or done) - (first_sentence or done)),
                    total_ms=_ms((first_audio or done) - started),
                )
                turn.record = record
                call.state.conversation_turns = self._conversation.turns
                call.state.misunderstood = self._conversation.misunderstood
                call.record_turn(record)
                log.info("turn", heard=transcript.text, said=reply.text, action=reply.action.type.value,
                         stt_ms=record.stt_ms, brain_ms=record.brain_ms, tts_ms=record.tts_ms,
                         total_ms=record.total_ms)  # fmt: skip
                if reply.action.type is ActionType.TAKE_MESSAGE:
                    call.state.phase = CallPhase.TAKING_MESSAGE
                    call.playback.enqueue(beep(self._rate), "", "beep")
                elif reply.action.ends_conversation:
                    self._finishing = True
                    await call.finish(reply.action)
                    return True
        return False

    async def _message_taken(self, call: CallContext, turn: _Turn, started: float, stt_ms: int) -> bool:
        config = self._config
        call.state.outcome = "message"
        text = f"{MESSAGE_TAKEN} {config.farewell}"
        call.playback.enqueue(await self._prompts.audio(self._tts, text, self._rate), text, turn.tag)
        call.reply_started()
        record = TurnRecord(
            index=len(call.state.turns) + 1,
            at=datetime.now(UTC),
            caller_text=turn.caller_text,
            secretary_text=text,
            action=Action.hangup(),
            brain="message",
            stt_ms=stt_ms,
            total_ms=_ms(time.perf_counter() - started),
        )
        turn.record = record
        call.record_turn(record)
        self._finishing = True
        await call.finish(Action.hangup())
        return True

    async def close(self) -> None:
        self._drop_early()
        task, self._reply = self._reply, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
