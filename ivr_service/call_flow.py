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
from secretary.calls.lifecycle import FIXED_BRAINS, CallLifecycle, Timings, conclude
from secretary.calls.models import CallPhase, CallRecord, CallState, Transport
from secretary.conversation.actions import Action
from secretary.conversation.conversation import Reply
from secretary.conversation.names import stt_hints
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
            if existing is not None and existing.transport != Transport.TURN:
                existing = None  # the realtime part's state (its bridge died or is finishing): replaced by ours
            state = existing or CallState(
                call_uuid=request.call_uuid,
                domain_uuid=config.domain_uuid,
                domain_name=config.domain_name,
                transport=Transport.TURN,
                caller_id_number=request.caller_id_number,
                caller_id_name=request.caller_id_name,
                destination_number=request.destination_number,
            )
            greeting = CallLifecycle(state, config).greeting(resumed=request.resumed_from is not None)
            if request.resumed_from is not None and existing is None:
                state.add_usage("fallbacks.transport")
            self._spool.open_call(config.domain_uuid, request.call_uuid)
            audio_file, _ = await self._speak(config, state, greeting, cacheable=True)
            await self._rt.call_states.put(state)
        if existing is None:
            self._rt.metrics.calls_started.labels(Transport.TURN).inc()
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
            config = await self._rt.secretaries.by_uuid(state.domain_uuid)
            started = time.perf_counter()
            call = CallLifecycle(state, config)
            keys, reply = call.keys(request.digits)
            return await self._finish_turn(call, keys, reply, {"stt_ms": 0, "brain_ms": 0}, started, None)

    async def end(self, call_uuid: UUID, request: EndCall) -> dict[str, Any]:
        async with self._locks.hold(call_uuid):
            state = await self._load(call_uuid, request, allow_ended=True)
            conclude(state, request.ended_by, request.destination)
            record = await self._joined(CallRecord.from_state(state, datetime.now(UTC), request.hangup_cause))
            await self._rt.call_records.save(record)  # spilled and retried while PostgreSQL is down
            await self._rt.call_states.delete(state.domain_uuid, call_uuid)
            await asyncio.to_thread(self._uploads.remove, state.domain_uuid, call_uuid)
        self._rt.metrics.calls_ended.labels(Transport.TURN, record.outcome).inc()
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
        if earlier is None or earlier.transport == Transport.TURN:
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
        call = CallLifecycle(state, config)
        call.caller_finished()

        heard = ""
        silent = audio.rms() < SILENCE_RMS
        if not silent:
            stt_started = time.perf_counter()
            hints = stt_hints(config)
            stt = self._rt.providers.stt(config, UsageMeter(state.usage))
            transcript = await stt.transcribe(audio, config.language, hints)
            heard = transcript.text
            timings["stt_ms"] = _ms(time.perf_counter() - stt_started)
        else:
            timings["stt_ms"] = 0

        brain_started = time.perf_counter()
        if message is not None:
            await self._messages.take(message, heard, config)
            reply = call.message_taken()
        elif call.time_up(datetime.now(UTC)):
            reply = call.time_limit()
        elif silent:
            reply = call.no_input()  # no brain is asked
        else:
            call.caller_spoke()
            brain = self._rt.providers.brain(config, UsageMeter(state.usage))
            reply = await call.conversation(brain, self._rt.knowledge, meaning=self._rt.meaning).respond(heard)
        timings["brain_ms"] = _ms(time.perf_counter() - brain_started)
        return await self._finish_turn(call, heard, reply, timings, started, recording)

    async def _finish_turn(
        self,
        call: CallLifecycle,
        heard: str,
        reply: Reply,
        timings: dict[str, int],
        started: float,
        recording: str | None,
    ) -> TurnResult:
        state, config = call.state, call.config
        tts_started = time.perf_counter()
        audio_file, cached = await self._speak(
            config, state, reply.text, cacheable=reply.brain in FIXED_BRAINS and not reply.personal
        )
        timings["tts_ms"] = 0 if cached else _ms(time.perf_counter() - tts_started)
        action = reply.action
        timings["total_ms"] = _ms(time.perf_counter() - started)
        call.turn(
            datetime.now(UTC),
            heard,
            reply.text,
            action=action,
            brain=reply.brain,
            timings=Timings(**timings),
            recording_file=recording,
            reply_file=audio_file,
        )
        call.speaking()  # the script plays the reply, then records the caller's next turn
        await self._rt.call_states.put(state)
        metrics = self._rt.metrics
        metrics.turns.labels(Transport.TURN, action.type.value).inc()
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
