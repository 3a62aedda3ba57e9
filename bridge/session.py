"""`CallSession`: one realtime call, from the first frame to the saved record.

It owns the engine, the outbound audio (`Playback`) and the call's state, and ends the call cleanly
whichever way it ends: the socket closes (the caller hung up, or FreeSWITCH ran `uuid_audio_stream stop`),
the engine finishes (a transfer or a hangup, after the last words played), the call reaches the domain's
maximum duration, the caller stays silent (a prompt first, then goodbye), or the engine fails or hangs (an
apology, then the domain's fallback destination). Call control goes over ESL; without ESL, the action is
sent to FreeSWITCH as a `mod_audio_stream::json` message the dialplan can act on, and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.engines.base import RealtimeEngine
from bridge.playback import EventTransport, ModuleTransport, Playback, PlaybackTransport
from bridge.prompts import APOLOGY, NOBODY_THERE, STILL_THERE, TIME_LIMIT, PromptAudio
from bridge.protocol import StreamMetadata, StreamTarget, call_action
from freeswitch.esl import EslClient, EslUnavailable
from secretary.calls.models import CallPhase, CallRecord, CallState, TurnRecord
from secretary.conversation.actions import Action, ActionType
from secretary.errors import SecretaryError
from secretary.runtime import Runtime
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

TRANSPORT = "realtime"
TICK_S = 0.25


class Ending(StrEnum):
    SOCKET_CLOSED = "socket_closed"
    FINISHED = "finished"
    ENGINE_FAILED = "engine_failed"
    ENGINE_STALLED = "engine_stalled"
    TIME_LIMIT = "time_limit"
    CALLER_SILENT = "caller_silent"
    SHUTDOWN = "shutdown"


class CallSession:
    def __init__(
        self,
        runtime: Runtime,
        config: SecretaryConfig,
        target: StreamTarget,
        metadata: StreamMetadata,
        websocket: ServerConnection,
        engine: RealtimeEngine,
        prompts: PromptAudio,
        esl: EslClient | None,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.sample_rate = metadata.sample_rate
        self.call_uuid = str(target.call_uuid)
        self.state = CallState(
            call_uuid=target.call_uuid,
            domain_uuid=config.domain_uuid,
            domain_name=config.domain_name,
            transport=TRANSPORT,
            caller_id_number=metadata.caller_id_number,
            caller_id_name=metadata.caller_id_name,
            destination_number=metadata.destination_number,
        )
        self._ws = websocket
        self._engine = engine
        self._prompts = prompts
        self._esl = esl
        self._loop = asyncio.get_running_loop()
        settings = runtime.settings.bridge
        transport: PlaybackTransport
        self._unwatch: Callable[[], None] | None = None
        self._events: EventTransport | None = None
        if config.playback_mode == "event":
            self._events = EventTransport(self._send, None, self.call_uuid, self._esl_failed)
            transport = self._events
        else:
            transport = ModuleTransport(self._send, settings.playback_chunk_ms)
        self._transport = transport
        self.playback = Playback(transport, self.sample_rate, settings.playback_lead_ms)
        self._started = self._loop.time()
        self._last_caller = self._started
        self._awaiting_since: float | None = None
        self._prompted = False
        self._closed = asyncio.Event()
        self._broken = asyncio.Event()
        self.finished = asyncio.Event()  # set once the record is saved
        self._close_code: int | None = None
        self._engine_error: BaseException | None = None
        self._ending: Ending | None = None
        if esl is not None:
            self.attach_esl(esl)

    # -- called by the server ------------------------------------------------------------------------------

    def attach_esl(self, esl: EslClient) -> None:
        """Call control over ESL, from the start or once FreeSWITCH confirmed the call's domain."""
        self._esl = esl
        if self._events is not None:
            self._events.attach(esl)
            self._unwatch = esl.watch(self.call_uuid, self._events.on_event)

    def feed(self, pcm: bytes) -> None:
        if self._ending is not None:
            return
        try:
            self._engine.feed(pcm)
        except Exception as exc:
            self._engine_error = exc
            self._broken.set()

    def socket_closed(self, code: int | None) -> None:
        self._close_code = code
        self._closed.set()

    def shut_down(self) -> None:
        """The bridge is stopping: end the call now (the record is still saved)."""
        self._ending = self._ending or Ending.SHUTDOWN
        self._closed.set()

    async def run(self) -> Ending:
        metrics = self.runtime.metrics
        metrics.calls_started.labels(TRANSPORT).inc()
        metrics.active_calls.labels(TRANSPORT).inc()
        structlog.contextvars.bind_contextvars(call_uuid=self.call_uuid, domain_uuid=str(self.config.domain_uuid))
        log.info("call_started", engine=self._engine.name, rate=self.sample_rate, mode=self.config.playback_mode)
        try:
            with contextlib.suppress(SecretaryError):
                await self.runtime.call_states.put(self.state)
            ending = await self._converse()
            if ending in (Ending.ENGINE_FAILED, Ending.ENGINE_STALLED, Ending.TIME_LIMIT, Ending.CALLER_SILENT):
                await self._end_for(ending)
            self._ending = ending
            return ending
        finally:
            await self._close()
            metrics.active_calls.labels(TRANSPORT).dec()

    # -- CallContext: what engines call ---------------------------------------------------------------------

    def caller_active(self) -> None:
        self._last_caller = self._loop.time()
        self._prompted = False

    def awaiting_reply(self) -> None:
        self._awaiting_since = self._loop.time()

    def reply_started(self) -> None:
        self._awaiting_since = None

    def record_turn(self, turn: TurnRecord) -> None:
        self.state.turns.append(turn)
        self.runtime.metrics.turns.labels(TRANSPORT, turn.action.type.value).inc()
        for stage in ("stt", "brain", "tts", "total"):
            value = getattr(turn, f"{stage}_ms")
            if value is not None:
                self.runtime.metrics.stage_seconds.labels(stage).observe(value / 1000)

    def note_barge_in(self) -> None:
        self.runtime.metrics.barge_ins.labels(self.config.playback_mode).inc()
        self.state.add_usage("barge_ins")

    async def finish(self, action: Action) -> None:
        await self.playback.drained()
        if action.type is ActionType.TRANSFER:
            self.state.outcome, self.state.outcome_destination = "transfer", action.destination
        elif action.type is ActionType.HANGUP:
            self.state.outcome = self.state.outcome or "hangup"
        self.state.phase = CallPhase.ENDED
        await self._control(action)

    # -- the call's life -----------------------------------------------------------------------------------

    async def _converse(self) -> Ending:
        engine_task = asyncio.create_task(self._engine.run(self), name="engine")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        closed = asyncio.create_task(self._closed.wait(), name="closed")
        broken = asyncio.create_task(self._broken.wait(), name="broken")
        tasks = (engine_task, watchdog, closed, broken)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self._engine_error is not None:
                log.error("engine_failed", engine=self._engine.name, error=repr(self._engine_error))
                return Ending.ENGINE_FAILED
            if engine_task.done():
                error = None if engine_task.cancelled() else engine_task.exception()
                if error is not None:
                    self._engine_error = error
                    log.error("engine_failed", engine=self._engine.name, error=repr(error))
                    return Ending.ENGINE_FAILED
                return Ending.FINISHED
            if watchdog.done() and not watchdog.cancelled():
                return watchdog.result()
            return self._ending or Ending.SOCKET_CLOSED
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self._engine.close()

    async def _watchdog(self) -> Ending:
        settings = self.runtime.settings.bridge
        cap = settings.max_call_seconds
        limit = self._started + min(self.config.max_call_seconds, cap or self.config.max_call_seconds)
        while True:
            await asyncio.sleep(TICK_S)
            now = self._loop.time()
            if self.playback.failed is not None:
                return Ending.SOCKET_CLOSED
            if now >= limit:
                return Ending.TIME_LIMIT
            since = self._awaiting_since
            if since is not None:
                if self.playback.ends_at > since:
                    self._awaiting_since = None
                elif now - since > settings.reply_deadline_s:
                    log.error("engine_stalled", engine=self._engine.name, waited_s=round(now - since, 1))
                    return Ending.ENGINE_STALLED
                continue
            if self.playback.speaking or self.state.phase is CallPhase.ENDED:
                continue
            idle = now - max(self._last_caller, self.playback.ends_at)
            if idle >= settings.caller_silence_s:
                if self._prompted:
                    return Ending.CALLER_SILENT
                self._prompted = True
                await self._say(STILL_THERE, local=False)

    async def _end_for(self, ending: Ending) -> None:
        """The endings the session speaks itself (the engine is stopped by now)."""
        if self._closed.is_set():
            return  # nobody left to hear it
        await self.playback.interrupt()
        fallback = Action.transfer(self.config.fallback_destination, self.config.context)
        try:
            if ending in (Ending.ENGINE_FAILED, Ending.ENGINE_STALLED):
                self.runtime.metrics.fallbacks.labels("realtime", self._engine.name).inc()
                self.state.add_usage(f"fallbacks.realtime.{self._engine.name}")
                await self._say(APOLOGY, local=True)
                await self.finish(fallback)
            elif ending is Ending.TIME_LIMIT:
                await self._say(TIME_LIMIT, local=False)
                await self.finish(fallback)
            else:
                self.state.outcome = "caller_silent"
                await self._say(NOBODY_THERE, local=False)
                await self.finish(Action.hangup())
        except (ConnectionClosed, OSError):
            return

    async def _say(self, text: str, *, local: bool) -> None:
        tts = self.runtime.providers.local_tts if local else self.runtime.providers.tts(self.config)
        try:
            audio = await self._prompts.audio(tts, text, self.sample_rate)
        except Exception:
            if local:
                raise
            audio = await self._prompts.audio(self.runtime.providers.local_tts, text, self.sample_rate)
        self.playback.enqueue(audio, text, "session")

    async def _control(self, action: Action) -> None:
        """Transfer or hang up over ESL; without ESL, ask the dialplan through the stream itself."""
        if action.type is ActionType.TRANSFER and action.destination:
            name = "uuid_transfer"
            line = f"uuid_transfer {self.call_uuid} {action.destination} XML {action.context or self.config.context}"
        elif action.type is ActionType.HANGUP:
            name, line = "uuid_kill", f"uuid_kill {self.call_uuid} NORMAL_CLEARING"
        else:
            return
        if self._esl is not None:
            try:
                reply = await self._esl.api(line)
                if reply.ok:
                    log.info("call_control", command=name, destination=action.destination)
                    return
                log.warning("esl_command_refused", command=name, reply=reply.reply_text)
            except EslUnavailable as exc:
                log.warning("esl_command_failed", command=name, error=str(exc))
        self._esl_failed(name)
        wire = action.wire()
        message = call_action({"call_uuid": self.call_uuid, "action": wire.pop("type"), **wire})
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.send(message)
        log.warning("call_control_via_stream", command=name, message=message)

    def _esl_failed(self, command: str) -> None:
        self.runtime.metrics.esl_failures.labels(command).inc()

    async def _send(self, text: str) -> None:
        await self._ws.send(text)

    async def _close(self) -> None:
        await self.playback.close()
        if isinstance(self._transport, EventTransport):
            await self._transport.close()
        if self._unwatch is not None:
            self._unwatch()
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.close(1000, (self._ending or Ending.SOCKET_CLOSED).value)
        ended = datetime.now(UTC)
        cause = None if self._close_code is None else f"stream_closed_{self._close_code}"
        record = CallRecord.from_state(self.state, ended, cause)
        try:
            await self.runtime.call_records.save(record)
        except Exception:
            log.exception("call_record_not_saved")
        with contextlib.suppress(SecretaryError):
            await self.runtime.call_states.delete(self.state.domain_uuid, self.state.call_uuid, TRANSPORT)
        self.finished.set()
        self.runtime.metrics.calls_ended.labels(TRANSPORT, record.outcome).inc()
        log.info("call_ended", outcome=record.outcome, turns=len(record.turns), duration_ms=record.duration_ms,
                 ending=(self._ending or Ending.SOCKET_CLOSED).value)  # fmt: skip
