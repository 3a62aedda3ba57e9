"""`CallSession`: one realtime call, from the first frame to the saved record.

It owns the engine, the outbound audio (`Playback`) and the call's state, and ends the call cleanly
whichever way it ends: the socket closes (the caller hung up, or FreeSWITCH ran `uuid_audio_stream stop`),
the engine finishes (a transfer or a hangup, after the last words played), the call reaches the domain's
maximum duration, the caller stays silent (a prompt first, then goodbye), or the engine fails or hangs (an
apology, then the domain's fallback destination). Call control goes over ESL; without ESL, the action is
sent to FreeSWITCH as a `mod_audio_stream::json` message the dialplan can act on, and counted.

A test call (the console's, from a browser: `test_call`) is this same session with no ESL: its action goes
over the stream for the page to show, and the greeting and each turn are sent back as `voiceai.transcript`.

Over ESL the session also hears the call's events: `mod_audio_stream::play` (event playback; in `module`
mode, the sign of the community build, which plays nothing itself: the call goes on in `event` mode) and
`DTMF`. Keys mean what they mean in the turn-based mode (`secretary.conversation.keys`): the first stops the
secretary like a barge-in, more may follow, then the secretary answers, and a transfer ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bridge.engines.base import KeyAware, RealtimeEngine
from bridge.playback import PLAY_EVENT, EventTransport, ModuleTransport, Playback, PlaybackModes, PlaybackTransport
from bridge.prompts import PromptAudio
from bridge.protocol import StreamMetadata, StreamTarget, call_action, transcript
from freeswitch.esl import EslClient, EslUnavailable
from freeswitch.esl_protocol import EslEvent, EslMessage
from secretary.calls.lifecycle import UNTIMED, CallLifecycle, Timings
from secretary.calls.models import CallState, Transport, TurnRecord
from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.conversation.actions import Action, ActionType
from secretary.conversation.conversation import Reply
from secretary.conversation.keys import KEYS, KeyCollector
from secretary.errors import SecretaryError
from secretary.messages.models import TakenMessage
from secretary.messages.taking import MessageTaker
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import TextToSpeech
from secretary.tasks import cancel_and_wait
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

TICK_S = 0.25
KEY_CUT_IN_S = 0.3  # how long a key waits for the engine to stop before the session stops the audio itself


class Ending(StrEnum):
    SOCKET_CLOSED = "socket_closed"
    FINISHED = "finished"
    ENGINE_FAILED = "engine_failed"
    ENGINE_STALLED = "engine_stalled"
    TIME_LIMIT = "time_limit"
    CALLER_SILENT = "caller_silent"
    KEYS = "keys"
    SHUTDOWN = "shutdown"


# The endings the session speaks itself, once the engine is stopped (`_end_for`).
SPOKEN_ENDINGS = frozenset(
    {Ending.ENGINE_FAILED, Ending.ENGINE_STALLED, Ending.TIME_LIMIT, Ending.CALLER_SILENT, Ending.KEYS}
)


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
        *,
        modes: PlaybackModes,
        test_call: bool = False,
    ) -> None:
        self.runtime = runtime
        self.test_call = test_call
        self.transport = Transport.TEST if test_call else Transport.REALTIME  # a test call's record says so
        self.config = config
        self.sample_rate = metadata.sample_rate
        self.call_uuid = str(target.call_uuid)
        self.state = CallState(
            call_uuid=target.call_uuid,
            domain_uuid=config.domain_uuid,
            domain_name=config.domain_name,
            transport=self.transport,
            caller_id_number=metadata.caller_id_number,
            caller_id_name=metadata.caller_id_name,
            destination_number=metadata.destination_number,
        )
        self.lifecycle = CallLifecycle(self.state, config, max_call_seconds=runtime.settings.bridge.max_call_seconds)
        self._ws = websocket
        self._engine = engine
        self._prompts = prompts
        self._messages = MessageTaker(runtime.courier, runtime.settings.spool.dir)
        self._esl = esl
        self._loop = asyncio.get_running_loop()
        settings = runtime.settings.bridge
        transport: PlaybackTransport
        self._unwatch: Callable[[], None] | None = None
        self._events: EventTransport | None = None
        self._modes = modes
        self.playback_mode: str = config.playback_mode  # `event` once the community build is detected
        modes.started(self.playback_mode)
        if config.playback_mode == "event":
            self._events = EventTransport(self._send, None, self.call_uuid, self._esl_failed)
            transport = self._events
        else:
            transport = ModuleTransport(self._send, settings.playback_chunk_ms)
        self._transport = transport
        self.playback = Playback(transport, self.sample_rate, settings.playback_lead_ms)
        self._started = self._loop.time()
        self._last_caller = self._started
        # the last resort behind every engine's own deadlines: no voice at all this long after a turn
        self._reply = ReplySupervisor(ReplyTimers(give_up_s=settings.reply_deadline_s))
        self._silence_reply: Reply | None = None  # the caller stayed silent: how the call ends
        self._closed = asyncio.Event()
        self._broken = asyncio.Event()
        self.finished = asyncio.Event()  # set once the record is saved
        self._close_code: int | None = None
        self._engine_error: BaseException | None = None
        self._ending: Ending | None = None
        self._finishing = False
        self._keys = KeyCollector()
        self._digits: asyncio.Future[str] | None = None  # the entry under way
        self._key_timer: asyncio.TimerHandle | None = None
        self._key_tasks: set[asyncio.Task[None]] = set()
        self._sends: set[asyncio.Task[None]] = set()  # `_tell`'s
        self._keys_lock = asyncio.Lock()
        self._keyed = asyncio.Event()  # keys ended the conversation: `_key_reply` says how
        self._key_reply: tuple[Reply, str, float] | None = None  # the reply, the keys' text, their start
        if esl is not None:
            self.attach_esl(esl)

    # -- called by the server ------------------------------------------------------------------------------

    def attach_esl(self, esl: EslClient) -> None:
        """Call control over ESL, from the start or once FreeSWITCH confirmed the call's domain."""
        self._esl = esl
        if self._events is not None:
            self._events.attach(esl)
        self._unwatch = esl.watch(self.call_uuid, self._on_event)

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
        metrics.calls_started.labels(self.transport).inc()
        metrics.active_calls.labels(self.transport).inc()
        structlog.contextvars.bind_contextvars(call_uuid=self.call_uuid, domain_uuid=str(self.config.domain_uuid))
        log.info("call_started", engine=self._engine.name, rate=self.sample_rate, mode=self.config.playback_mode)
        try:
            with contextlib.suppress(SecretaryError):
                await self.runtime.call_states.put(self.state)
            if self.test_call:  # every engine opens with it (`CallLifecycle.greeting`); it is no turn
                self._tell(transcript(0, "", self.config.opening_line, Action.continue_().wire()))
            ending = await self._converse()
            if ending in SPOKEN_ENDINGS:
                await self._end_for(ending)
            self._ending = ending
            return ending
        finally:
            await self._close()
            metrics.active_calls.labels(self.transport).dec()

    # -- CallContext: what engines call ---------------------------------------------------------------------

    def caller_active(self) -> None:
        self._last_caller = self._loop.time()
        self.lifecycle.caller_spoke()

    def awaiting_reply(self) -> None:
        self._reply.caller_finished(self._loop.time())
        self.lifecycle.caller_finished()

    def reply_started(self) -> None:
        self._reply.audio_queued(self._loop.time())
        self.lifecycle.speaking()

    def record_turn(
        self,
        caller_text: str,
        secretary_text: str = "",
        *,
        action: Action | None = None,
        brain: str | None = None,
        heard_text: str | None = None,
        timings: Timings = UNTIMED,
    ) -> TurnRecord:
        turn = self.lifecycle.turn(
            datetime.now(UTC), caller_text, secretary_text, action=action, brain=brain, heard_text=heard_text,
            timings=timings,
        )  # fmt: skip
        self.runtime.metrics.turns.labels(self.transport, turn.action.type.value).inc()
        for stage in ("stt", "brain", "tts", "total"):
            value = getattr(turn, f"{stage}_ms")
            if value is not None:
                self.runtime.metrics.stage_seconds.labels(stage).observe(value / 1000)
        if self.test_call:
            self._tell(transcript(turn.index, turn.caller_text, turn.secretary_text, turn.action.wire()))
        return turn

    def note_barge_in(self) -> None:
        self.runtime.metrics.barge_ins.labels(self.playback_mode).inc()
        self.state.add_usage("barge_ins")

    def message_held(self, audio: Pcm) -> AbstractAsyncContextManager[TakenMessage]:
        return self._messages.held(self.state, audio)

    async def take_message(self, message: TakenMessage, transcript: str) -> Reply:
        await self._messages.take(message, transcript, self.config)
        return self.lifecycle.message_taken()

    async def finish(self, action: Action) -> None:
        self._finishing = True  # keys pressed from now on are not answered: the call is on its way out
        self.lifecycle.act(action)
        await self.playback.drained()
        await self._control(action)

    # -- the call's life -----------------------------------------------------------------------------------

    async def _converse(self) -> Ending:
        engine_task = asyncio.create_task(self._engine.run(self), name="engine")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        closed = asyncio.create_task(self._closed.wait(), name="closed")
        broken = asyncio.create_task(self._broken.wait(), name="broken")
        keyed = asyncio.create_task(self._keyed.wait(), name="keyed")
        tasks = (engine_task, watchdog, closed, broken, keyed)
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
            if keyed.done() and not self._closed.is_set():
                return Ending.KEYS
            return self._ending or Ending.SOCKET_CLOSED
        finally:
            await cancel_and_wait(*tasks)
            with contextlib.suppress(Exception):
                await self._engine.close()

    async def _watchdog(self) -> Ending:
        settings = self.runtime.settings.bridge
        while True:
            await asyncio.sleep(TICK_S)
            now = self._loop.time()
            if self.playback.failed is not None:
                return Ending.SOCKET_CLOSED
            if self.lifecycle.time_up(datetime.now(UTC)):
                return Ending.TIME_LIMIT
            since = self._reply.awaiting_since
            if since is not None:
                if self.playback.ends_at > since:
                    self._reply.audio_queued(now)
                elif Due.GIVE_UP in self._reply.poll(now):
                    log.error("engine_stalled", engine=self._engine.name, waited_s=round(now - since, 1))
                    return Ending.ENGINE_STALLED
                continue
            if self.playback.speaking or self.lifecycle.over:
                continue
            self.lifecycle.listening()
            idle = now - max(self._last_caller, self.playback.ends_at)
            if idle >= settings.caller_silence_s:
                reply = self.lifecycle.no_input()
                if reply.action.ends_conversation:
                    self._silence_reply = reply
                    return Ending.CALLER_SILENT
                await self._say(reply.text, local=False)

    async def _end_for(self, ending: Ending) -> None:
        """The endings the session speaks itself (the engine is stopped by now)."""
        if self._closed.is_set():
            return  # nobody left to hear it
        await self.playback.interrupt()
        try:
            if ending in (Ending.ENGINE_FAILED, Ending.ENGINE_STALLED):
                self.runtime.metrics.fallbacks.labels("realtime", self._engine.name).inc()
                self.state.add_usage(f"fallbacks.realtime.{self._engine.name}")
                reply = self.lifecycle.fault()
                await self._say(reply.text, local=True)
            elif ending is Ending.TIME_LIMIT:
                reply = self.lifecycle.time_limit()
                await self._say(reply.text, local=False)
            elif ending is Ending.KEYS:
                assert self._key_reply is not None
                reply, keys, started = self._key_reply
                await self._answer_keys(reply, keys, started)
            else:
                assert self._silence_reply is not None
                reply = self._silence_reply
                await self._say(reply.text, local=False)
            await self.finish(reply.action)
        except (ConnectionClosed, OSError):
            return

    async def _say(self, text: str, *, local: bool, personal: bool = False) -> None:
        """Says a reply of the session's own; `personal` (the caller's details) is synthesised, never cached."""
        tts = self.runtime.providers.local_tts if local else self.runtime.providers.tts(self.config)
        try:
            audio = await self._audio(tts, text, personal)
        except Exception:
            if local:
                raise
            audio = await self._audio(self.runtime.providers.local_tts, text, personal)
        self.playback.enqueue(audio, text, "session")

    async def _audio(self, tts: TextToSpeech, text: str, personal: bool) -> bytes:
        if personal:
            return (await tts.synthesize(text)).resampled(self.sample_rate).data
        return await self._prompts.audio(tts, text, self.sample_rate)

    async def _control(self, action: Action) -> None:
        """Transfer or hang up over ESL; without ESL, ask the dialplan through the stream itself."""
        esl = self._esl
        sent: Awaitable[EslMessage] | None = None
        if action.type is ActionType.TRANSFER and action.destination:
            name, context = "uuid_transfer", action.context or self.config.context
            sent = None if esl is None else esl.transfer(self.call_uuid, action.destination, context)
        elif action.type is ActionType.HANGUP:
            name = "uuid_kill"
            sent = None if esl is None else esl.kill(self.call_uuid)
        else:
            return
        if sent is not None:
            try:
                reply = await sent
                if reply.ok:
                    log.info("call_control", command=name, destination=action.destination)
                    return
                log.warning("esl_command_refused", command=name, reply=reply.reply_text)
            except EslUnavailable as exc:
                log.warning("esl_command_failed", command=name, error=str(exc))
        wire = action.wire()
        message = call_action({"call_uuid": self.call_uuid, "action": wire.pop("type"), **wire})
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.send(message)
        if self.test_call:  # shown on the console's page: there is no call to act on
            log.info("test_call_action", command=name, destination=action.destination)
            return
        self._esl_failed(name)
        log.warning("call_control_via_stream", command=name, message=message)

    def _esl_failed(self, command: str) -> None:
        self.runtime.metrics.esl_failures.labels(command).inc()

    async def _send(self, text: str) -> None:
        await self._ws.send(text)

    def _tell(self, text: str) -> None:
        """A message for a test call's page, sent from synchronous code (a page gone is no error)."""

        async def send() -> None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.send(text)

        task = self._loop.create_task(send(), name="tell")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    # -- ESL events: playback and keys --------------------------------------------------------------------

    def _on_event(self, event: EslEvent) -> None:
        if event.unique_id != self.call_uuid:
            return
        if event.name == "DTMF":
            self._on_key(event.headers.get("DTMF-Digit", ""))
        elif event.subclass == PLAY_EVENT:
            if self._events is None:
                self._community_build_detected()
            assert self._events is not None
            self._events.on_event(event)

    def _community_build_detected(self) -> None:
        """A `play` event in `module` mode: the module wrote our audio to a file instead of playing it. The call
        goes on in `event` mode; this event and the ones of the chunks already sent are broadcast in order."""
        log.warning("playback_mode_detected", configured=self.config.playback_mode, detected="event",
                    advice="the community mod_audio_stream plays nothing itself: set playback_mode: event",
                    **self._ids())  # fmt: skip
        self._events = EventTransport(self._send, self._esl, self.call_uuid, self._esl_failed)
        self.playback.use(self._events)
        self._transport = self._events
        self.playback_mode = "event"
        self._modes.detected()
        self.state.add_usage("playback.detected_event")

    def _ids(self) -> dict[str, str]:
        """For logs from ESL's side (its events arrive outside the call's task and its bound context)."""
        return {"call_uuid": self.call_uuid, "domain_uuid": str(self.config.domain_uuid)}

    def _on_key(self, key: str) -> None:
        if key not in KEYS or self._finishing or self._ending is not None or self._keyed.is_set():
            return
        if not self.lifecycle.answers_keys:
            return  # a message is being left: keys are part of it, as in the turn-based mode
        self.caller_active()
        first = self._digits is None
        if first:
            self._digits = self._loop.create_future()
            task = asyncio.create_task(self._take_keys(self._digits), name="keys")
            self._key_tasks.add(task)
            task.add_done_callback(self._key_tasks.discard)
        self._key_entry(self._keys.press(key, self._loop.time()))

    def _key_entry(self, digits: str | None) -> None:
        """The entry ended (`digits`), or wait for the next key until the collector's deadline."""
        if self._key_timer is not None:
            self._key_timer.cancel()
            self._key_timer = None
        entry = self._digits
        if entry is None:
            return
        if digits is not None:
            self._digits = None
            if not entry.done():
                entry.set_result(digits)
        elif self._keys.deadline is not None:
            self._key_timer = self._loop.call_at(
                self._keys.deadline, lambda: self._key_entry(self._keys.expire(self._loop.time()))
            )

    async def _take_keys(self, entry: asyncio.Future[str]) -> None:
        try:
            await self._keys_answered(entry)
        except (ConnectionClosed, OSError):
            return  # the caller is gone
        except Exception:
            log.exception("keys_not_answered")

    async def _keys_answered(self, entry: asyncio.Future[str]) -> None:
        """From the first key: stop the secretary, wait for the entry, answer it (one entry at a time)."""
        if isinstance(self._engine, KeyAware):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEY_CUT_IN_S):
                    await self._engine.keys_pressed()
        if self.playback.speaking:  # an engine that is not told of keys, or one that did not stop in time
            await self.playback.interrupt()
            self.note_barge_in()
        digits = await entry
        started = time.perf_counter()  # the turn's time, as in the turn-based mode: from the entry to the reply
        async with self._keys_lock:
            if self._finishing or self._keyed.is_set():
                return
            keys, reply = self.lifecycle.keys(digits)
            log.info("keys", digits=digits, action=reply.action.type.value, **self._ids())
            if reply.action.ends_conversation:
                self._key_reply = (reply, keys, started)
                self._keyed.set()  # the engine stops; the session says the reply and acts (`_end_for`)
                return
            await self.playback.interrupt()  # what the engine queued meanwhile: the caller chose keys
            await self._answer_keys(reply, keys, started)

    async def _answer_keys(self, reply: Reply, keys: str, started: float) -> None:
        spoken = time.perf_counter()
        await self._say(reply.text, local=False, personal=reply.personal)
        done = time.perf_counter()
        tts_ms, total_ms = round((done - spoken) * 1000), round((done - started) * 1000)
        self.record_turn(
            keys, reply.text, action=reply.action, brain=reply.brain, timings=Timings(0, 0, tts_ms, total_ms)
        )

    async def _close(self) -> None:
        if self._key_timer is not None:
            self._key_timer.cancel()
        await cancel_and_wait(*self._key_tasks, *self._sends)
        await self.playback.close()
        if isinstance(self._transport, EventTransport):
            await self._transport.close()
        if self._unwatch is not None:
            self._unwatch()
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.close(1000, (self._ending or Ending.SOCKET_CLOSED).value)
        self.state.add_usage(f"playback.{self.playback_mode}")
        self.lifecycle.ended()
        cause = None if self._close_code is None else f"stream_closed_{self._close_code}"
        record = self.lifecycle.record(datetime.now(UTC), cause)
        try:
            await self.runtime.call_records.save(record)
        except Exception:
            log.exception("call_record_not_saved")
        with contextlib.suppress(SecretaryError):
            await self.runtime.call_states.delete(self.state.domain_uuid, self.state.call_uuid, self.transport)
        self.finished.set()
        self.runtime.metrics.calls_ended.labels(self.transport, record.outcome).inc()
        log.info("call_ended", outcome=record.outcome, turns=len(record.turns), duration_ms=record.duration_ms,
                 ending=(self._ending or Ending.SOCKET_CLOSED).value)  # fmt: skip
