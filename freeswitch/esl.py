"""Call control over FreeSWITCH's event socket: one shared, reconnecting inbound connection per process.

Why not the `genesis` library: it pins `redis<6` (the project uses redis-py 8), pulls a web stack
(fastapi, uvicorn, typer, rich, watchdog, opentelemetry exporters) into a process that needs a few hundred
lines of socket code, stops at Python 3.12, and does not reconnect. Ours sits on the sans-I/O parser in
`esl_protocol` that the simulator's server shares.

Commands get their replies in order, so a FIFO of futures pairs them; a command that times out leaves the
pairing unknown, so the connection is dropped and made again. Events are subscribed once
(`event json DTMF CUSTOM mod_audio_stream::play …`) and filtered to the calls this process watches
(`filter Unique-ID <uuid>`), with a placeholder filter so nothing of other calls arrives before the first
call is watched; all of it is replayed after a reconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

import structlog

from freeswitch.esl_protocol import EslEvent, EslMessage, EslParser, EslProtocolError, command
from secretary.errors import DependencyUnavailable
from secretary.settings import EslSettings
from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SUBCLASSES = ("mod_audio_stream::play", "mod_audio_stream::json", "mod_audio_stream::error")
EVENTS = ("DTMF",)  # channel events, named before CUSTOM: every word after CUSTOM is taken as a subclass
PLACEHOLDER_FILTER = "00000000-0000-0000-0000-000000000000"

EventHandler = Callable[[EslEvent], None]


class EslUnavailable(DependencyUnavailable):
    def __init__(self, detail: str) -> None:
        super().__init__("freeswitch_esl", detail)


class EslClient:
    def __init__(self, settings: EslSettings) -> None:
        self._settings = settings
        self._writer: asyncio.StreamWriter | None = None
        self._pending: deque[asyncio.Future[EslMessage]] = deque()
        self._lock = asyncio.Lock()
        self._watchers: dict[str, list[EventHandler]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0  # successful connections so far (a reconnection increments it)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="esl")

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        return self.connected

    async def close(self) -> None:
        self._closing = True
        await cancel_and_wait(self._task)
        self._drop("closing")

    # -- commands ------------------------------------------------------------------------------------------

    async def api(self, line: str) -> EslMessage:
        """Runs `api <line>`; raises `EslUnavailable` when not connected or when FreeSWITCH doesn't answer."""
        return await self._send(command(f"api {line}"), line.split(" ", 1)[0])

    async def transfer(self, call_uuid: str, extension: str, context: str) -> EslMessage:
        return await self.api(f"uuid_transfer {call_uuid} {extension} XML {context}")

    async def kill(self, call_uuid: str, cause: str = "NORMAL_CLEARING") -> EslMessage:
        return await self.api(f"uuid_kill {call_uuid} {cause}")

    async def _send(self, data: bytes, name: str) -> EslMessage:
        if self._writer is None or not self.connected:
            raise EslUnavailable("not connected")
        future: asyncio.Future[EslMessage] = asyncio.get_running_loop().create_future()
        async with self._lock:
            writer = self._writer
            if writer is None:
                raise EslUnavailable("not connected")
            self._pending.append(future)
            try:
                writer.write(data)
                await writer.drain()
            except OSError as exc:
                self._drop(str(exc))
                raise EslUnavailable(f"write failed: {exc}") from exc
        try:
            async with asyncio.timeout(self._settings.command_timeout_s):
                return await future
        except TimeoutError:
            self._drop(f"{name} timed out")  # replies may now pair with the wrong command: start over
            raise EslUnavailable(f"{name}: no reply within {self._settings.command_timeout_s} s") from None

    # -- events --------------------------------------------------------------------------------------------

    def watch(self, call_uuid: str, handler: EventHandler) -> Callable[[], None]:
        """Deliver this call's events (mod_audio_stream's, its keys) to `handler`; returns the function that
        stops it."""
        first = call_uuid not in self._watchers
        self._watchers.setdefault(call_uuid, []).append(handler)
        if first:
            self._background(command(f"filter Unique-ID {call_uuid}"))

        def unwatch() -> None:
            handlers = self._watchers.get(call_uuid, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers and self._watchers.pop(call_uuid, None) is not None:
                self._background(command(f"filter delete Unique-ID {call_uuid}"))

        return unwatch

    def _background(self, data: bytes) -> None:
        """A subscription change; lost if the link is down, which is fine: a reconnection replays them all."""
        if self.connected:
            task = asyncio.create_task(self._quiet(data))
            task.add_done_callback(lambda t: None)

    async def _quiet(self, data: bytes) -> None:
        with contextlib.suppress(EslUnavailable):
            await self._send(data, "filter")

    def _dispatch(self, event: EslEvent) -> None:
        for handler in list(self._watchers.get(event.unique_id, ())):
            try:
                handler(event)
            except Exception:
                log.exception("esl_event_handler_failed", subclass=event.subclass)

    # -- connection ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._session()
                delay = 0.2
            except (OSError, EslProtocolError, EslUnavailable, TimeoutError) as exc:
                log.warning("esl_disconnected", error=str(exc) or type(exc).__name__, retry_s=round(delay, 2))
            except Exception:  # a bug must not end call control for good: only our own cancellation stops this
                log.exception("esl_session_failed", retry_s=round(delay, 2))
            self._drop("disconnected")
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.reconnect_max_s)

    async def _session(self) -> None:
        settings = self._settings
        try:
            password = settings.current_password()
        except OSError as exc:
            raise EslUnavailable(f"can't read the ESL password from {settings.password_file}: {exc.strerror}") from exc
        async with asyncio.timeout(settings.connect_timeout_s):
            reader, writer = await asyncio.open_connection(settings.host, settings.port)
        parser = EslParser()
        try:
            async with asyncio.timeout(settings.connect_timeout_s):
                greeting = await self._next(reader, parser)
                if greeting.content_type != "auth/request":
                    raise EslProtocolError(f"expected auth/request, got {greeting.content_type!r}")
                writer.write(command(f"auth {password}"))
                reply = await self._next(reader, parser)
                if not reply.ok or "+OK" not in reply.reply_text:
                    raise EslUnavailable("authentication refused (check the ESL password)")
            self._writer = writer
            self._connected.set()
            self.connections += 1
            log.info("esl_connected", host=settings.host, port=settings.port)
            reader_task = asyncio.create_task(self._read(reader, parser))
            try:
                await self._send(command(f"event json {' '.join(EVENTS)} CUSTOM {' '.join(SUBCLASSES)}"), "event")
                await self._send(command(f"filter Unique-ID {PLACEHOLDER_FILTER}"), "filter")
                for call_uuid in list(self._watchers):
                    await self._send(command(f"filter Unique-ID {call_uuid}"), "filter")
                await reader_task
            finally:
                await cancel_and_wait(reader_task)
        finally:
            self._drop("session over")
            writer.close()  # not awaiting wait_closed(): after a reset it can hang on Python 3.11

    async def _next(self, reader: asyncio.StreamReader, parser: EslParser) -> EslMessage:
        backlog: list[EslMessage] = []
        while not backlog:
            data = await reader.read(65536)
            if not data:
                raise EslUnavailable("connection closed")
            backlog = parser.feed(data)
        return backlog[0]

    async def _read(self, reader: asyncio.StreamReader, parser: EslParser) -> None:
        try:
            await self._read_messages(reader, parser)
        finally:
            self._drop("connection lost")  # fail the commands waiting for a reply now, not at their timeout

    async def _read_messages(self, reader: asyncio.StreamReader, parser: EslParser) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                raise EslUnavailable("connection closed by FreeSWITCH")
            for message in parser.feed(data):
                kind = message.content_type
                if kind in ("command/reply", "api/response"):
                    if self._pending:
                        future = self._pending.popleft()
                        if not future.done():
                            future.set_result(message)
                elif kind == "text/disconnect-notice":
                    raise EslUnavailable("FreeSWITCH said goodbye")
                else:
                    try:
                        event = message.event()
                    except EslProtocolError as exc:  # the framing is intact: only this event is lost
                        log.warning("esl_event_malformed", content_type=kind, error=str(exc)[:120])
                        continue
                    if event is not None:
                        self._dispatch(event)

    def _drop(self, reason: str) -> None:
        self._connected.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(EslUnavailable(reason))
                future.exception()  # mark it retrieved: its caller may have given up already
