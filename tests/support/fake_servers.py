"""What every fake provider server shares: a fault switch, a loopback aiohttp runner, and the ways to fail.

The fakes speak each provider's documented wire protocol (their official SDKs talk to them unchanged) and
answer with real work: speech comes from Piper, transcripts from Whisper, replies are derived from the
request. `fault` makes the next requests fail in one of the ways a real provider does.
"""

from __future__ import annotations

import asyncio
import socket
from enum import StrEnum
from typing import Any

from aiohttp import web


class Fault(StrEnum):
    NONE = "none"
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"  # with Retry-After
    REFUSED = "refused"  # nothing listens: the client is pointed at a closed port
    HANG = "hang"  # accepts, then sends nothing (not even headers / the WebSocket handshake)
    STALL = "stall"  # sends a first piece, then nothing more
    DISCONNECT = "disconnect"  # breaks the connection mid-stream (a WebSocket closed mid-utterance)
    MALFORMED = "malformed"  # a 200 whose JSON is broken


FAULTS = [f for f in Fault if f is not Fault.NONE]
RETRY_AFTER_S = 2


def closed_port_url(scheme: str = "http") -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


class FakeServer:
    """Base: runs `app` on a free loopback port; `hang()` parks a handler until the server stops."""

    def __init__(self) -> None:
        self.fault = Fault.NONE
        self.requests: list[dict[str, Any]] = []
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:  # pragma: no cover - overridden
        raise NotImplementedError

    async def start(self) -> FakeServer:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def hang(self) -> None:
        await self._release.wait()

    def error_response(self) -> web.Response | None:
        """The canned answer for the status-code faults, or None."""
        if self.fault is Fault.HTTP_500:
            return web.json_response({"error": {"message": "internal error", "type": "server_error"}}, status=500)
        if self.fault is Fault.HTTP_429:
            return web.json_response(
                {"error": {"message": "rate limit reached", "type": "rate_limit_exceeded"}},
                status=429,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        return None


async def abort(request: web.Request) -> None:
    """Break the TCP connection under a response in progress."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    await asyncio.sleep(0)
