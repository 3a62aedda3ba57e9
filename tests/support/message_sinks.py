"""Real receivers for message deliveries: an SMTP server (aiosmtpd) and a webhook server (aiohttp) that
checks the HMAC signature the way the README tells integrators to. Both can be started late, on a port
chosen in advance, to play a receiver that was down."""

from __future__ import annotations

import email
import json
import socket
import time
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from secretary.messages.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpSink:
    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[Envelope, Message]] = []
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append((envelope, email.message_from_bytes(content)))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class WebhookSink:
    """Accepts a POST only with a valid, fresh signature; records what it accepted and refused."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.delivery_ids: list[str] = []
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(self.secret, timestamp, body, signature) or abs(time.time() - int(timestamp or 0)) > 300:
            self.refused.append(signature)
            return web.Response(status=401)
        self.delivery_ids.append(request.headers.get(DELIVERY_HEADER, ""))
        self.accepted.append(json.loads(body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"
