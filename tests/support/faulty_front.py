"""A real HTTP server in front of the real ivr_service that breaks chosen replies: what a failing service, a
misconfigured proxy or a compromised service can hand the Lua script. Requests it doesn't break pass
through unchanged, so a call can go well for a few turns and then fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from tests.support.threaded_app import serve_app

Route = Literal["start", "turns", "dtmf", "end"]
FaultKind = Literal["status", "malformed", "no_say", "oversized", "slow", "rewrite"]


@dataclass
class Fault:
    route: Route
    kind: FaultKind
    status: int = 500
    delay_s: float = 0.0
    changes: dict[str, Any] = field(default_factory=dict)  # for "rewrite": top-level keys replaced


def _route(path: str) -> Route:
    if path.endswith("/turns"):
        return "turns"
    if path.endswith("/dtmf"):
        return "dtmf"
    if path.endswith("/end"):
        return "end"
    return "start"


class FaultyFront:
    def __init__(self, upstream: str, faults: list[Fault]) -> None:
        self.upstream = upstream
        self.faults = {fault.route: fault for fault in faults}
        self.seen: list[tuple[Route, int]] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = _route(request.path)
        body = await request.read()
        fault = self.faults.get(route)
        if fault is not None and fault.kind == "status":
            self.seen.append((route, fault.status))
            return web.json_response(
                {"error": {"code": "injected", "message": f"injected HTTP {fault.status}"}}, status=fault.status
            )
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                self.upstream + request.path_qs, data=body, headers={"Content-Type": request.content_type}
            ) as upstream,
        ):
            status, raw = upstream.status, await upstream.read()
        self.seen.append((route, status))
        if fault is None or fault.kind == "slow":
            return web.Response(body=raw, status=status, content_type="application/json")
        if fault.kind == "malformed":
            return web.Response(body=raw[: len(raw) // 2], status=status, content_type="application/json")
        reply = json.loads(raw)
        if fault.kind == "no_say":
            reply.pop("say", None)
        elif fault.kind == "oversized":
            reply["padding"] = "x" * 70000  # valid JSON, but mod_curl keeps only the first 64000 bytes
        elif fault.kind == "rewrite":
            reply.update(fault.changes)
        return web.json_response(reply, status=status)


@contextmanager
def faulty_front(upstream: str, faults: list[Fault]) -> Iterator[tuple[str, FaultyFront]]:
    front = FaultyFront(upstream, faults)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", front._handle)
    with serve_app(app) as url:
        yield url, front
