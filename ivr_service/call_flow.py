"""The turn-based call: start → (record → STT → conversation → TTS → play)* → end, over the shared core.

State lives in the call-state store between requests, so consecutive turns of one call can be served by
different processes (or by this one after a restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog

from ivr_service.api_models import DomainReference, Dtmf, EndCall, StartCall
from ivr_service.spool import AudioSpool, CallUploads
from secretary.calls.models import CallPhase, CallRecord, CallState, TurnRecord
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.brain import ChatMessage
from secretary.conversation.conversation import Conversation, Reply
from secretary.conversation.keys import caller_text, key_reply
from secretary.conversation.lines import MESSAGE_TAKEN, NOBODY_THERE, RESUMED, STILL_THERE, TIME_LIMIT
from secretary.errors import CallEnded, SecretaryError, UnknownCall
from secretary.messages.models import TakenMessage
from secretary.messages.taking import MessageTaker
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm, parse_wav, wav_bytes
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.store import lookup
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)

SILENCE_RMS = 40.0  # below this a recording is line noise: don't run STT (Whisper invents words in silence)
TRANSPORT = "turn"
# Replies of these are fixed texts of the domain's config: worth caching as audio, and bounded in number.
CACHEABLE_BRAINS = {"front_desk", "turn_limit", "time_limit", "dtmf", "message", "silence"}


@dataclass
class TurnResult:
    call_uuid: UUID
    say_text: str
    audio_file: str
    action: Action
    record: dict[str, Any]
    heard: str | None = None
    timings: dict[str, int] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "call_uuid": str(self.call_uuid),
            "say": {"text": self.say_text, "audio_file": self.audio_file},
            "action": self.action.wire(),
            "record": self.record,
        }
        if self.heard is not None:
            out["heard"] = self.heard
            out["timings"] = self.timings
        return out


class CallLocks:
    """One turn at a time per call: a retried request waits for the first instead of racing it."""

    def __init__(self) -> None:
        self._locks: dict[UUID, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, call_uuid: UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(call_uuid, (asyncio.Lock(), 0))
        self._locks[call_uuid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[call_uuid]
            if users <= 1:
                del self._locks[call_uuid]
            else:
                self._locks[call_uuid] = (lock, users - 1)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class TurnFlow:
    def __init__(self, runtime: Runtime, spool: AudioSpool, uploads: CallUploads) -> None:
        self._rt = runtime
        self._spool = spool
        self._uploads = uploads
        self._locks = CallLocks()
        self._messages = MessageTaker(runtime.courier, spool.root)

    # -- call lifecycle ------------------------------------------------------------------------------------

    async def start(self, request: StartCall) -> TurnResult:
        config = await lookup(self._rt.secretaries, request.domain_uuid, request.domain_name)
        structlog.contextvars.bind_contextvars(call_uuid=str(request.call_uuid), domain_uuid=str(config.domain_uuid))
        async with self._locks.hold(request.call_uuid):
            existing = await self._rt.call_states.get(request.call_uuid)
            if existing is not None and existing.domain_uuid != config.domain_uuid:
                raise UnknownCall("call_uuid is already in use")
            if existing is not None and existing.transport != TRANSPORT:
                existing = None  # the realtime part's state (its bridge died or is finishing): replaced by ours
            state = existing or CallState(
                call_uuid=request.call_uuid,
                domain_uuid=config.domain_uuid,
                domain_name=config.domain_name,
                transport=TRANSPORT,
                caller_id_number=request.caller_id_number,
                caller_id_name=request.caller_id_name,
                destination_number=request.destination_number,
            )
            if request.resumed_from is None:
                brain = self._rt.providers.brain(config, UsageMeter(state.usage))
                greeting = Conversation(config, brain, state.history).opening()
            else:
                greeting = RESUMED
                if existing is None:
                    state.history.append(ChatMessage(role="assistant", content=greeting))
                    state.add_usage("fallbacks.transport")
            self._spool.open_call(config.domain_uuid, request.call_uuid)
            audio_file, _ = await self._speak(config, state, greeting, cacheable=True)
            await self._rt.call_states.put(state)
        if existing is None:
            self._rt.metrics.calls_started.labels(TRANSPORT).inc()
            log.info("call_started", caller=request.caller_id_number, destination=request.destination_number)
        return TurnResult(request.call_uuid, greeting, audio_file, Action.continue_(), self._record_spec(config, state))

    async def turn_from_file(self, call_uuid: UUID, ref: DomainReference, recording_file: str) -> TurnResult:
        async with self._locks.hold(call_uuid):
            state = await self._load(call_uuid, ref)
            path = self._spool.resolve_recording(recording_file, state.domain_uuid, call_uuid)
            audio = parse_wav(await asyncio.to_thread(self._spool.read_recording, path), allow_empty=True)
            async with self._message_held(state, path, audio) as message:
                config = await self._rt.secretaries.by_uuid(state.domain_uuid)
                return await self._turn(state, config, audio, self._spool.for_freeswitch(path), message)

    async def turn_from_wav(self, call_uuid: UUID, ref: DomainReference, body: bytes) -> TurnResult:
        async with self._locks.hold(call_uuid):
            state = await self._load(call_uuid, ref)
            audio = parse_wav(body, allow_empty=True)
            taking_message = state.phase is CallPhase.TAKING_MESSAGE
            path = await asyncio.to_thread(
                self._uploads.store, state.domain_uuid, call_uuid, len(state.turns) + 1, body, message=taking_message
            )
            async with self._message_held(state, path, audio) as message:
                config = await self._rt.secretaries.by_uuid(state.domain_uuid)
                return await self._turn(state, config, audio, self._spool.for_freeswitch(path), message)

    def _message_held(
        self, state: CallState, audio_path: Path, audio: Pcm
    ) -> AbstractAsyncContextManager[TakenMessage | None]:
        """While the caller leaves a message, their recording is a message on disk for the whole turn. A
        recording without a single sample holds nothing to lose: that is a silent turn, not a message."""
        if state.phase is not CallPhase.TAKING_MESSAGE or not audio.data:
            return nullcontext()
        return self._messages.held(state, audio, audio_path)

    async def dtmf(self, call_uuid: UUID, request: Dtmf) -> TurnResult:
        async with self._locks.hold(call_uuid):
            state = await self._load(call_uuid, request)
            state.silent_turns = 0
            config = await self._rt.secretaries.by_uuid(state.domain_uuid)
            started = time.perf_counter()
            reply = key_reply(config, request.digits)
            return await self._finish_turn(
                state, config, caller_text(request.digits), reply, {"stt_ms": 0, "brain_ms": 0}, started, None
            )

    async def end(self, call_uuid: UUID, request: EndCall) -> dict[str, Any]:
        async with self._locks.hold(call_uuid):
            state = await self._load(call_uuid, request, allow_ended=True)
            ended = datetime.now(UTC)
            state.outcome, state.outcome_destination = _outcome(state, request)
            record = await self._joined(CallRecord.from_state(state, ended, request.hangup_cause))
            await self._rt.call_records.save(record)  # spilled and retried while PostgreSQL is down
            await self._rt.call_states.delete(state.domain_uuid, call_uuid)
            await asyncio.to_thread(self._uploads.remove, state.domain_uuid, call_uuid)
        self._rt.metrics.calls_ended.labels(TRANSPORT, record.outcome).inc()
        log.info(
            "call_ended",
            outcome=record.outcome,
            turns=len(record.turns),
            duration_ms=record.duration_ms,
            ended_by=request.ended_by,
            reason=request.reason,
        )
        return {"call_uuid": str(call_uuid), "turns": len(record.turns), "duration_ms": record.duration_ms}

    async def _joined(self, record: CallRecord) -> CallRecord:
        """A call that began realtime and went on here is one record: the bridge saved its part (under the same
        call) when its stream closed, so that part's turns, start and usage come first. Only its turns from
        before this part began are taken, so a repeated `/end` does not repeat them."""
        try:
            earlier = await self._rt.call_records.get(record.domain_uuid, record.call_uuid)
        except SecretaryError as exc:
            log.warning("call_record_not_joined", reason=exc.message)  # saved alone: the realtime part's is kept
            return record
        if earlier is None or earlier.transport == TRANSPORT:
            return record
        before = [t for t in earlier.turns if t.at < record.started_at]
        turns = [t.model_copy(update={"index": i}) for i, t in enumerate([*before, *record.turns], start=1)]
        usage = dict(earlier.usage)
        for key, value in record.usage.items():
            usage[key] = round(usage.get(key, 0.0) + value, 3)
        started = min(earlier.started_at, record.started_at)
        return record.model_copy(
            update={
                "transport": earlier.transport,
                "started_at": started,
                "duration_ms": max(0, int((record.ended_at - started).total_seconds() * 1000)),
                "turns": turns,
                "usage": usage,
            }
        )

    # -- one turn ------------------------------------------------------------------------------------------

    async def _load(self, call_uuid: UUID, ref: DomainReference, *, allow_ended: bool = False) -> CallState:
        state = await self._rt.call_states.get(call_uuid)
        # A call of another domain reads exactly like an unknown call: nothing tells the caller it exists.
        if state is None or (ref.domain_uuid and ref.domain_uuid.lower() != str(state.domain_uuid)):
            raise UnknownCall(f"unknown call {call_uuid}")
        if ref.domain_name and ref.domain_name.casefold() != state.domain_name.casefold():
            raise UnknownCall(f"unknown call {call_uuid}")
        structlog.contextvars.bind_contextvars(call_uuid=str(call_uuid), domain_uuid=str(state.domain_uuid))
        if state.phase is CallPhase.ENDED and not allow_ended:
            raise CallEnded(f"call {call_uuid} has ended")
        return state

    async def _turn(
        self, state: CallState, config: SecretaryConfig, audio: Pcm, recording: str, message: TakenMessage | None
    ) -> TurnResult:
        started = time.perf_counter()
        timings: dict[str, int] = {}
        elapsed_call = (datetime.now(UTC) - state.started_at).total_seconds()

        heard = ""
        silent = audio.rms() < SILENCE_RMS
        if not silent:
            stt_started = time.perf_counter()
            hints = [name for t in config.directory for name in t.spoken_names]
            stt = self._rt.providers.stt(config, UsageMeter(state.usage))
            transcript = await stt.transcribe(audio, config.language, hints)
            heard = transcript.text
            timings["stt_ms"] = _ms(time.perf_counter() - stt_started)
        else:
            timings["stt_ms"] = 0

        brain_started = time.perf_counter()
        if message is not None:
            state.outcome = "message"
            await self._messages.take(message, heard, config)
            reply = Reply(f"{MESSAGE_TAKEN} {config.farewell}", Action.hangup(), "message")
        elif elapsed_call > config.max_call_seconds:
            reply = Reply(TIME_LIMIT, Action.transfer(config.fallback_destination, config.context), "time_limit")
        elif silent:
            reply = self._no_input(state, config)
        else:
            state.silent_turns = 0
            conversation = Conversation(
                config,
                self._rt.providers.brain(config, UsageMeter(state.usage)),
                state.history,
                turns=state.conversation_turns,
                misunderstood=state.misunderstood,
                knowledge=self._rt.knowledge,
            )
            reply = await conversation.respond(heard)
            state.conversation_turns, state.misunderstood = conversation.turns, conversation.misunderstood
        timings["brain_ms"] = _ms(time.perf_counter() - brain_started)
        return await self._finish_turn(state, config, heard, reply, timings, started, recording)

    @staticmethod
    def _no_input(state: CallState, config: SecretaryConfig) -> Reply:
        """A turn with nothing above line noise (a caller from whom no audio arrives leaves a bare WAV header):
        asked again, until `recording.silent_turns` in a row end the call. No brain is asked."""
        state.silent_turns += 1
        if state.silent_turns < config.recording.silent_turns:
            return Reply(STILL_THERE, Action.continue_(), "silence")
        state.outcome = "caller_silent"
        return Reply(NOBODY_THERE, Action.hangup(), "silence")

    async def _finish_turn(
        self,
        state: CallState,
        config: SecretaryConfig,
        heard: str,
        reply: Reply,
        timings: dict[str, int],
        started: float,
        recording: str | None,
    ) -> TurnResult:
        tts_started = time.perf_counter()
        audio_file, cached = await self._speak(config, state, reply.text, cacheable=reply.brain in CACHEABLE_BRAINS)
        timings["tts_ms"] = 0 if cached else _ms(time.perf_counter() - tts_started)
        action = reply.action
        if action.type is ActionType.TAKE_MESSAGE:
            state.phase = CallPhase.TAKING_MESSAGE
        elif action.type is ActionType.TRANSFER:
            state.outcome, state.outcome_destination = "transfer", action.destination
        elif action.type is ActionType.HANGUP and state.outcome is None:
            state.outcome = "hangup"
        timings["total_ms"] = _ms(time.perf_counter() - started)
        state.turns.append(
            TurnRecord(
                index=len(state.turns) + 1,
                at=datetime.now(UTC),
                caller_text=heard,
                secretary_text=reply.text,
                action=action,
                brain=reply.brain,
                recording_file=recording,
                reply_file=audio_file,
                stt_ms=timings["stt_ms"],
                brain_ms=timings["brain_ms"],
                tts_ms=timings["tts_ms"],
                total_ms=timings["total_ms"],
            )
        )
        await self._rt.call_states.put(state)
        metrics = self._rt.metrics
        metrics.turns.labels(TRANSPORT, action.type.value).inc()
        for stage in ("stt", "brain", "tts", "total"):
            metrics.stage_seconds.labels(stage).observe(timings[f"{stage}_ms"] / 1000)
        log.info("turn", heard=heard, said=reply.text, action=action.type.value, brain=reply.brain, **timings)
        return TurnResult(
            state.call_uuid, reply.text, audio_file, action, self._record_spec(config, state), heard, timings
        )

    async def _speak(self, config: SecretaryConfig, state: CallState, text: str, cacheable: bool) -> tuple[str, bool]:
        tts = self._rt.providers.tts(config, UsageMeter(state.usage))
        if cacheable:
            path, hit = await self._rt.tts_cache.speak(tts, text)
            self._rt.metrics.tts_cache.labels("hit" if hit else "miss").inc()
            return self._spool.for_freeswitch(path), hit
        pcm = (await tts.synthesize(text)).resampled(self._rt.settings.spool.reply_sample_rate)
        path = self._spool.outbox(state.domain_uuid, state.call_uuid) / f"reply-{len(state.turns) + 1:03d}.wav"
        await asyncio.to_thread(self._spool.write, path, wav_bytes(pcm))
        return self._spool.for_freeswitch(path), False

    def _record_spec(self, config: SecretaryConfig, state: CallState) -> dict[str, Any]:
        rec = config.recording
        taking_message = state.phase is CallPhase.TAKING_MESSAGE
        return {
            "file": self._spool.message_path(state.domain_uuid, state.call_uuid)
            if taking_message
            else self._spool.recording_path(state.domain_uuid, state.call_uuid, len(state.turns) + 1),
            "max_seconds": rec.message_max_seconds if taking_message else rec.max_seconds,
            "silence_threshold": rec.silence_threshold,
            "silence_seconds": rec.silence_seconds,
        }


def _outcome(state: CallState, request: EndCall) -> tuple[str | None, str | None]:
    """The call's outcome once the script said how it ended; the service's own view without that."""
    if request.ended_by == "fallback":
        return "fallback", request.destination
    if request.ended_by == "caller" and state.outcome != "message":
        return "caller_hangup", None  # also when a transfer was announced but the caller left first
    if request.ended_by == "hangup" and state.outcome is None:
        return "hangup", None
    return state.outcome, state.outcome_destination
