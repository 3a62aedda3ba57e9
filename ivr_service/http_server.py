"""How the service's HTTP server treats its clients: deadlines for a request's headers and body, a cap on
connections held at once, and nothing of a malformed request's raw bytes (an API key among them) in the log.

aiohttp has no header timeout of its own, but it closes a connection whose next request hasn't been parsed when
`keepalive_timeout` runs out, counted from the connection (or the previous response) and not moved by each byte:
that is the header deadline, so a client dribbling headers a byte at a time is closed like an idle one."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from secretary.errors import BadInput
from secretary.settings import IvrSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# An Authorization or shared-secret header's value up to the end of its line, and anything shaped like one of
# our keys (vai_...).
_SECRETS = re.compile(r"((?:authorization|x-voiceai-secret)\s*:\s*)[^\r\n'\"]*|vai_[A-Za-z0-9_\-]+", re.IGNORECASE)


class BodyTimeout(BadInput):
    http_status = 408

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s", field="body", code="body_timeout")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = _SECRETS.sub(lambda m: f"{m.group(1)}[redacted]" if m.group(1) else "[redacted]", text)
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's protocol writes to. Its parser errors quote the raw bytes of the offending header
    (`Authorization: Bearer vai_…\\x00…`, or just the folded-over rest of a key; the pure-Python parser even in
    the reason itself), so a parser error is logged by its class and status alone; anything else it logs has
    Authorization and shared-secret values, key-shaped text and the configured secrets redacted."""

    def __init__(self, logger: logging.Logger, secrets: tuple[str, ...] = ()) -> None:
        super().__init__(logger, {})
        self._secrets = secrets

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            kwargs["exc_info"] = None
            msg = f"{msg}: {type(error).__name__} {error.code}"
        return redact(str(msg), self._secrets), kwargs


def handler_args(settings: IvrSettings) -> dict[str, Any]:
    """Options of aiohttp's per-connection protocol (`web.Application(handler_args=...)`)."""
    secrets = (settings.shared_secret.get_secret_value(),) if settings.shared_secret is not None else ()
    return {
        "keepalive_timeout": settings.header_timeout_s,
        "logger": RedactingLogger(logging.getLogger("aiohttp.server"), secrets),
    }


def body_deadline(seconds: float) -> Middleware:
    """Middleware: a body still arriving `seconds` after the headers fails its reader with `BodyTimeout`
    (408), whichever handler is reading it; a body that has arrived leaves a slow handler alone."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)

        def expire() -> None:
            if not request.content.is_eof():
                request.content.set_exception(BodyTimeout(seconds))

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return middleware


_BUSY_BODY = json.dumps(
    {"error": {"code": "too_many_connections", "message": "the service holds too many connections; retry shortly"}}
).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
    + _BUSY_BODY
)


class _Busy(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, with its end reported to the `ConnectionLimit`."""

    def __init__(self, inner: asyncio.Protocol, closed: Callable[[], None]) -> None:
        self._inner = inner
        self._closed: Callable[[], None] | None = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed is not None:
            self._closed()
            self._closed = None
        self._inner.connection_lost(exc)


class ConnectionLimit:
    """A protocol factory that serves at most `limit` connections at once and answers the next one 503."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int) -> None:
        self._factory = factory
        self.limit = limit
        self.open = 0

    def __call__(self) -> asyncio.Protocol:
        if self.open >= self.limit:
            return _Busy()
        self.open += 1
        return _Counted(self._factory(), self._closed)

    def _closed(self) -> None:
        self.open -= 1


class LimitedSite(web.BaseSite):
    """A TCP site like `web.TCPSite` whose connections pass through a `ConnectionLimit`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, max_connections: int) -> None:
        super().__init__(runner)
        self._host = host
        self._requested_port = port
        self._max_connections = max_connections
        self.limit: ConnectionLimit | None = None

    @property
    def port(self) -> int:
        if self._server is not None and isinstance(self._server, asyncio.Server) and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self.limit = ConnectionLimit(server, self._max_connections)
        self._server = await asyncio.get_running_loop().create_server(self.limit, self._host, self._requested_port)
