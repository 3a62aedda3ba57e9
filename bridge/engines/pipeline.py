"""The streaming pipeline, the default realtime engine, fully offline:
VAD on the caller's frames → end of turn after a silence → STT on the utterance → the brain's reply streamed
sentence by sentence → TTS per sentence → resampled to the call rate → queued for playback as soon as it
exists. The greeting comes first, from the TTS cache.

Barge-in: speech confirmed while the secretary talks (or while a reply is still being thought up) stops the
playback, drops the rest of the reply, and the transcript keeps what the caller actually heard.

When the domain's STT chain starts with a streaming provider (Deepgram), the caller's frames also go to it
(`StreamedTurns`) and the turn ends when the provider says so, transcript included; our VAD keeps doing
barge-in, and if the stream fails mid-call the pipeline goes on with its VAD and Whisper — an utterance the
VAD had already closed but the provider had not answered yet is answered from the VAD's audio.

A late turn (nothing audible `fallback.late_after_s` after the caller's turn ended: slow STT, LLM or TTS, or
a fallback at work) gets the filler ("One moment, please."), held in memory, once per turn: the timer is the
pipeline's `ReplySupervisor` (`secretary/calls/supervisor.py`). Usage (provider
per stage, audio seconds, tokens, characters, failures, fallbacks) goes to the call's `usage`.

`takeover`: the pipeline continues a call another engine started (`EngineChain`): no greeting, the
conversation so far as history, "Sorry, one moment.", the unheard rest of the cut reply, then the caller's
audio since that engine last spoke is run through the VAD, so words it never answered are answered now.

Who speaks when — the phases (listening, answering, replying, interrupting, finishing), barge-in, a cut turn
carried into the next, the early STT, the streaming STT's turns, a takeover's held apology — is `TurnTaking`
(`bridge/engines/turn_taking.py`), a sans-I/O state machine: `run` reports each event to it and carries out
the actions it returns; this module keeps the I/O (tasks, STT, TTS, playback, the timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bridge.engines.base import CallContext
from bridge.engines.streamed_turns import StreamedTurns
from bridge.engines.turn_taking import (
    AbandonStream,
    Action,
    AwaitTranscript,
    BargeIn,
    CallerActive,
    CallerFinished,
    Cut,
    DropEarlyStt,
    End,
    PlayApology,
    StartEarlyStt,
    StartReply,
    Stream,
    TurnTaking,
)
from bridge.prompts import PromptAudio, beep
from secretary.calls.lifecycle import Timings
from secretary.calls.models import TurnRecord
from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.conversation.actions import ActionType
from secretary.conversation.brain import ChatMessage
from secretary.conversation.conversation import Conversation, Reply, ReplyDone, Sentence
from secretary.conversation.names import stt_hints
from secretary.deadlines import ProviderTimeout
from secretary.errors import ProviderFailed
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.speech.chains import SttChain, TtsChain, health_key
from secretary.speech.interfaces import Transcript
from secretary.speech.sentences import split_first_clause
from secretary.speech.utterances import SegmentEvent, UtteranceSegmenter
from secretary.speech.vad import SileroVad
from secretary.tasks import cancel_and_wait, wait_all
from secretary.tenants.config import SecretaryConfig
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)

STREAM_GATE_PROBABILITY = 0.3  # a Silero window this speech-like opens the streaming STT's gate


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _raise_if_cut() -> None:
    """A reply the caller cut goes no further, even where an await on the way swallowed its cancellation."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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


@dataclass(frozen=True, slots=True)
class _Streamed:
    """The streaming STT ended the caller's turn, with its transcript."""

    text: str


@dataclass(frozen=True, slots=True)
class _StreamLost:
    error: BaseException


@dataclass(frozen=True, slots=True)
class Takeover:
    """How the pipeline picks up a call another engine started (see `EngineChain`)."""

    history: list[ChatMessage]
    turns: int
    replay: bytes  # the caller's audio since that engine last spoke, at the call rate
    remainder: str  # the part of the cut reply the caller has not heard yet ("" if none)
    apology: bytes  # "Sorry, one moment." at the call rate


@dataclass(frozen=True, slots=True)
class _KeysPressed:
    """The session got a key: barge in, then say so."""

    done: asyncio.Future[None]


_Event = SegmentEvent | _ReplyOver | _Streamed | _StreamLost | _KeysPressed


class PipelineEngine:
    name = "pipeline"

    def __init__(
        self,
        runtime: Runtime,
        config: SecretaryConfig,
        sample_rate: int,
        prompts: PromptAudio,
        *,
        takeover: Takeover | None = None,
    ) -> None:
        vad_settings = runtime.settings.bridge.vad
        self._vad = SileroVad(
            runtime.models.silero_vad(), sample_rate, vad_settings.threshold, vad_settings.min_level_dbfs
        )
        self._segmenter = UtteranceSegmenter(self._vad, sample_rate, vad_settings)
        self._runtime = runtime
        self._config = config
        self._rate = sample_rate
        self._prompts = prompts
        self._takeover = takeover
        self._early_frames = bytearray()  # a takeover's frames that arrive before `run` starts
        self._usage = UsageMeter()
        self._stt: SttChain = runtime.providers.stt(config, self._usage)
        self._tts: TtsChain = runtime.providers.tts(config, self._usage)
        self._conversation = Conversation(config, runtime.providers.brain(config, self._usage))
        self._streaming: StreamedTurns | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._filler = b""
        self._turns = TurnTaking(sample_rate)  # who speaks when: every turn-taking decision
        fallback = runtime.settings.fallback
        # The caller's clock (the filler) and the streaming STT's: once our VAD heard the turn end, the
        # provider, whose endpointing is quicker, must say so within `stt_stall_s`.
        self._supervisor = ReplySupervisor(
            ReplyTimers(filler_after_s=fallback.late_after_s, first_byte_s=fallback.stt_stall_s)
        )
        self._late: asyncio.TimerHandle | None = None  # wakes `_due` at the supervisor's next moment
        self._closing: set[asyncio.Future[None]] = set()
        self._opening: asyncio.Future[None] | None = None
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._reply: asyncio.Task[bool] | None = None
        self._turn: _Turn | None = None  # the reply in progress, or the last one (what a barge-in cut)
        self._call: CallContext | None = None
        self._early: asyncio.Future[Transcript] | None = None  # STT started on a pause, before the turn ended

    def feed(self, pcm: bytes) -> None:
        if self._call is None:
            if self._takeover is not None:
                self._early_frames += pcm
            return
        for event in self._segmenter.feed(pcm):
            self._events.put_nowait(event)
        streaming = self._streaming
        if streaming is not None and not streaming.failed:
            streaming.feed(pcm, self._segmenter.active or self._vad.last_probability >= STREAM_GATE_PROBABILITY)

    async def run(self, call: CallContext) -> None:
        self._call = call
        self._usage = UsageMeter(call.state.usage)
        providers = self._runtime.providers
        self._stt = providers.stt(self._config, self._usage)
        self._tts = providers.tts(self._config, self._usage)
        brain = providers.brain(self._config, self._usage)
        fallback = self._runtime.settings.fallback
        filler = asyncio.ensure_future(self._runtime.tts_cache.held(self._tts, fallback.filler_text))
        self._opening = asyncio.ensure_future(self._open_stream())  # the greeting does not wait for it
        takeover = self._takeover
        knowledge = self._runtime.knowledge
        if takeover is None:
            self._conversation = call.lifecycle.conversation(brain, knowledge, meaning=self._runtime.meaning)
            greeting = call.lifecycle.greeting()
            call.playback.enqueue(await self._prompts.audio(self._tts, greeting, self._rate), greeting, "greeting")
        else:
            self._conversation = call.lifecycle.conversation(
                brain, knowledge, list(takeover.history), takeover.turns, meaning=self._runtime.meaning
            )
            await self._resume(call, takeover)
        try:
            self._filler = (await filler).resampled(self._rate).data
        except Exception as exc:  # no filler for this call, but the call goes on
            log.warning("filler_unavailable", error=str(exc) or type(exc).__name__)
        while True:
            event = await self._events.get()
            if isinstance(event, _ReplyOver):
                if event.task is not self._reply:
                    continue
                self._reply = None
                self._disarm_timers()  # (already, if it was heard): nothing of this turn is awaited any more
                if not event.task.cancelled() and (error := event.task.exception()) is not None:
                    raise error
                actions = self._turns.reply_over(ended=not event.task.cancelled() and event.task.result())
            elif isinstance(event, _StreamLost):
                self._supervisor.provider_done()
                actions = self._turns.stream_lost(event.error)
            elif isinstance(event, _KeysPressed):
                actions = self._turns.keys_pressed(speaking=call.playback.speaking)
            elif isinstance(event, _Streamed):
                actions = self._turns.streamed(event.text, self._segmenter.position_ms)
            else:
                actions = self._turns.segment(event, speaking=call.playback.speaking)
            over = await self._act(call, actions)
            if isinstance(event, _KeysPressed) and not event.done.done():
                event.done.set_result(None)
            if over:
                return

    async def keys_pressed(self) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._events.put_nowait(_KeysPressed(done))
        await done

    async def _act(self, call: CallContext, actions: Sequence[Action]) -> bool:
        """Carries out the turn-taking's actions, in order; True when the conversation is over."""
        for action in actions:
            if isinstance(action, CallerActive):
                call.caller_active()
            elif isinstance(action, CallerFinished):
                if action.streamed:
                    self._supervisor.provider_done()
                call.caller_active()
            elif isinstance(action, AwaitTranscript):  # kept until the provider's transcript comes
                now = asyncio.get_running_loop().time()
                self._supervisor.caller_finished(now)
                self._supervisor.provider_started(now)
                self._arm_timers()
            elif isinstance(action, StartEarlyStt):
                self._early = self._transcribe(action.audio)
            elif isinstance(action, DropEarlyStt):
                self._drop_early()
            elif isinstance(action, StartReply):
                self._start_reply(call, action)
            elif isinstance(action, BargeIn):
                cut = await self._barge_in(call)
                if await self._act(call, cut.then):
                    return True
            elif isinstance(action, PlayApology):
                call.playback.enqueue(action.audio, self._runtime.settings.fallback.realtime_lost_text, "apology")
            elif isinstance(action, AbandonStream):
                self._abandon_stream(action.error)
            elif isinstance(action, End):
                return True
        return False

    # -- the streaming STT -----------------------------------------------------------------------------------

    async def _open_stream(self) -> None:
        providers = self._runtime.providers
        stt = providers.streaming_stt(self._config)
        if stt is None:
            return
        settings = self._runtime.settings.fallback
        hints = stt_hints(self._config)
        hold_s = float(getattr(stt, "hold_s", 1.5))
        streaming = StreamedTurns(stt, self._rate, self._config.language, hints, hold_s)
        try:
            async with asyncio.timeout(settings.stt_first_result_s):
                await streaming.open()
        except (ProviderFailed, TimeoutError) as exc:
            self._stream_failed(stt, exc)
            return
        self._usage.served("stt", stt.name, fallback=False)
        self._streaming = streaming
        if self._turns.stream_opened():  # (only ever DropEarlyStt: no await, so no clash with `run`'s actions)
            self._drop_early()

        async def on_utterance(text: str) -> None:
            self._events.put_nowait(_Streamed(text))

        async def listen() -> None:
            try:
                await streaming.run(on_utterance)
            except ProviderFailed as exc:
                self._events.put_nowait(_StreamLost(exc))

        self._stream_task = asyncio.create_task(listen(), name="pipeline-stt-stream")

    def _stream_failed(self, stt: Any, exc: BaseException) -> None:
        self._usage.failure("stt", stt.name)
        self._runtime.providers.health.failed(health_key(stt), exc, getattr(stt, "probe", None))
        log.warning("streaming_stt_failed", provider=stt.name, error=str(exc) or type(exc).__name__)

    def _abandon_stream(self, error: BaseException) -> None:
        """Mid-call: on with the VAD and Whisper (the turn-taking answers a turn the VAD closed that got no
        transcript)."""
        streaming = self._streaming
        if streaming is None:
            return
        streaming.failed = True
        task, self._stream_task = self._stream_task, None
        if task is not None:
            task.cancel()
        self._closing.add(asyncio.ensure_future(streaming.close()))
        self._stream_failed(streaming.stt, error)
        self._usage.audio_seconds(streaming.provider, round(streaming.sent_s, 2))

    # -- a turn being late -----------------------------------------------------------------------------------

    def _arm_timers(self) -> None:
        """Wakes at the supervisor's next moment: the filler (at most one a turn, `late_after_s` after the
        caller's turn ended, unless something was audible first), the streaming STT's end-of-turn deadline."""
        late, self._late = self._late, None
        if late is not None:
            late.cancel()
        at = self._supervisor.next_due()
        if at is not None:
            self._late = asyncio.get_running_loop().call_at(at, self._due)

    def _disarm_timers(self) -> None:
        """The reply is audible (or cut, or over): nothing is awaited any more."""
        late, self._late = self._late, None
        if late is not None:
            late.cancel()
        self._supervisor.reply_done(asyncio.get_running_loop().time())

    def _due(self) -> None:
        self._late = None
        settings = self._runtime.settings.fallback
        for due in self._supervisor.poll(asyncio.get_running_loop().time()):
            if due is Due.FILLER and self._filler and self._call is not None and not self._turns.ending:
                self._call.playback.enqueue(self._filler, settings.filler_text, "filler")
                self._usage.add("fillers")
            elif due is Due.NO_FIRST_BYTE:
                error = ProviderTimeout(f"no end of turn from the stream within {settings.stt_stall_s}s")
                self._events.put_nowait(_StreamLost(error))
        self._arm_timers()

    # -- taking over ------------------------------------------------------------------------------------------

    async def _resume(self, call: CallContext, takeover: Takeover) -> None:
        replay = takeover.replay + bytes(self._early_frames)
        self._early_frames.clear()
        events = self._segmenter.feed(replay)
        # the apology now, or, while the caller is speaking, as the opening of the answer to their words
        await self._act(call, self._turns.take_over(takeover.apology, caller_speaking=self._segmenter.active))
        if takeover.remainder:
            tag = f"turn-{len(call.state.turns)}-rest"
            async for pcm in self._tts.stream(takeover.remainder):
                call.playback.enqueue(pcm.resampled(self._rate).data, takeover.remainder, tag)
        await self._act(call, self._turns.replayed(events))

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()

    async def _heard(self, audio: Pcm, early: asyncio.Future[Transcript] | None, text: str | None) -> Transcript:
        """The turn's transcript: streamed already (`text`), started early on a pause, or asked for now."""
        if text is not None:
            return Transcript(text, self._streaming.provider if self._streaming else "stream", 0.0)
        return await (early if early is not None else self._transcribe(audio))

    def _transcribe(self, audio: Pcm) -> asyncio.Future[Transcript]:
        hints = stt_hints(self._config)
        return asyncio.ensure_future(self._stt.transcribe(audio, self._config.language, hints))

    def _start_reply(self, call: CallContext, action: StartReply) -> None:
        early, self._early = self._early, None
        if not action.early and early is not None:  # it transcribed less than this turn (or it was streamed)
            early.cancel()
            early = None
        if not self._supervisor.awaiting:  # the caller awaits this reply (since our VAD heard the end, if it did)
            self._supervisor.caller_finished(asyncio.get_running_loop().time())
        if action.apology:  # the takeover's "Sorry, one moment." is this turn's filler
            call.playback.enqueue(action.apology, self._runtime.settings.fallback.realtime_lost_text, "apology")
            self._supervisor.filler_played()
        self._arm_timers()
        turn = _Turn(f"turn-{len(call.state.turns) + 1}", action.audio, caller_text=action.text or "")
        self._turn = turn
        task = asyncio.create_task(self._answer(turn, early, action.text), name="pipeline-reply")
        task.add_done_callback(lambda t: self._events.put_nowait(_ReplyOver(t)))
        self._reply = task

    async def _barge_in(self, call: CallContext) -> Cut:
        self._disarm_timers()
        task, self._reply = self._reply, None
        if task is not None and not task.done():
            task.cancel()  # it queues no more audio (`_raise_if_cut`)
        interruption = await call.playback.interrupt()  # stop first: every millisecond here is heard
        for error in await wait_all(task):
            log.warning("cut_reply_failed", error=repr(error))
        turn, self._turn = self._turn, None
        heard = interruption.heard.get(turn.tag, "") if turn is not None else ""
        outcome = self._turns.cut(
            heard=bool(heard),
            recorded=turn is not None and turn.record is not None,
            caller_text=turn.caller_text if turn is not None else "",
        )
        if turn is None:
            if interruption.cut.get("greeting"):
                call.note_barge_in()
                self._conversation.note_interrupted(interruption.heard.get("greeting", ""))
            return outcome
        if outcome.carried:
            return outcome  # nothing of the reply reached the caller: both parts are answered together
        cut = interruption.cut.get(turn.tag, "")
        if not cut and turn.record is not None:
            return outcome  # the reply had been heard to the end: nothing was interrupted
        call.note_barge_in()
        log.info("barge_in", heard=heard, cut=cut)
        if turn.record is not None:
            call.lifecycle.revise(turn.record, heard_text=heard)
            self._conversation.note_interrupted(heard)
        else:  # cut while still being generated: the conversation never saw the reply end
            self._conversation.history.append(ChatMessage(role="user", content=turn.caller_text))
            cut_off = call.lifecycle.prompts.cut_off(heard)
            self._conversation.history.append(ChatMessage(role="assistant", content=cut_off))
            call.record_turn(turn.caller_text, " ".join(turn.spoken), heard_text=heard)
        return outcome

    async def _answer(self, turn: _Turn, early: asyncio.Future[Transcript] | None, text: str | None) -> bool:
        """One turn; returns True when it ended the conversation. `text`: already transcribed (streaming)."""
        call = self._call
        assert call is not None
        call.awaiting_reply()
        started = time.perf_counter()
        audio, tag = turn.audio, turn.tag
        if call.lifecycle.taking_message:  # the recording is the message before STT can fail
            async with call.message_held(audio) as message:
                turn.caller_text = (await self._heard(audio, early, text)).text
                reply = await call.take_message(message, turn.caller_text)
            return await self._message_taken(call, turn, reply, started, _ms(time.perf_counter() - started))
        transcript = await self._heard(audio, early, text)
        turn.caller_text = transcript.text
        stt_done = time.perf_counter()

        first_sentence: float | None = None
        first_audio: float | None = None
        async for event in self._conversation.stream(transcript.text):
            if isinstance(event, Sentence):
                first_sentence = first_sentence or time.perf_counter()
                turn.spoken.append(event.text)
                parts = split_first_clause(event.text) if len(turn.spoken) == 1 else [event.text]
                for part in parts:
                    async for pcm in self._tts.stream(part):
                        _raise_if_cut()
                        if first_audio is None:
                            first_audio = time.perf_counter()
                            self._disarm_timers()
                            self._turns.reply_audible()
                            call.reply_started()
                        call.playback.enqueue(pcm.resampled(self._rate).data, part, tag)
            elif isinstance(event, ReplyDone):
                _raise_if_cut()
                reply = event.reply
                for provider in reply.failed:
                    self._runtime.metrics.fallbacks.labels("brain", provider).inc()
                    call.state.add_usage(f"fallbacks.brain.{provider}")
                done = time.perf_counter()
                timings = Timings(
                    stt_ms=_ms(stt_done - started),
                    brain_ms=_ms((first_sentence or done) - stt_done),
                    tts_ms=_ms((first_audio or done) - (first_sentence or done)),
                    total_ms=_ms((first_audio or done) - started),
                )
                record = call.record_turn(
                    transcript.text, reply.text, action=reply.action, brain=reply.brain, timings=timings
                )
                turn.record = record
                log.info("turn", heard=transcript.text, said=reply.text, action=reply.action.type.value,
                         stt_ms=record.stt_ms, brain_ms=record.brain_ms, tts_ms=record.tts_ms,
                         total_ms=record.total_ms)  # fmt: skip
                if reply.action.type is ActionType.TAKE_MESSAGE:  # the lifecycle takes the next turn as one
                    call.playback.enqueue(beep(self._rate), "", "beep")
                elif reply.action.ends_conversation:
                    self._turns.finishing()
                    await call.finish(reply.action)
                    return True
        return False

    async def _message_taken(self, call: CallContext, turn: _Turn, reply: Reply, started: float, stt_ms: int) -> bool:
        self._turns.finishing()  # the message is taken: the caller's "bye" while the thanks is made cuts nothing
        audio = await self._prompts.audio(self._tts, reply.text, self._rate)
        self._disarm_timers()
        call.playback.enqueue(audio, reply.text, turn.tag)
        call.reply_started()
        timings = Timings(stt_ms=stt_ms, total_ms=_ms(time.perf_counter() - started))
        turn.record = call.record_turn(
            turn.caller_text, reply.text, action=reply.action, brain=reply.brain, timings=timings
        )
        await call.finish(reply.action)
        return True

    async def close(self) -> None:
        self._disarm_timers()
        opening, self._opening = self._opening, None
        stream_task, self._stream_task = self._stream_task, None
        await cancel_and_wait(opening, stream_task)
        streaming, self._streaming = self._streaming, None
        if streaming is not None:
            if self._turns.stream is not Stream.LOST:  # (a lost stream's seconds are counted already)
                self._usage.audio_seconds(streaming.provider, round(streaming.sent_s, 2))
            with contextlib.suppress(Exception):
                await streaming.close()
        await wait_all(*self._closing)
        self._drop_early()
        task, self._reply = self._reply, None
        await cancel_and_wait(task)
