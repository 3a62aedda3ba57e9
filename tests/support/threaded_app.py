"""Serves an aiohttp application on a free loopback port from its own thread and event loop, for tests whose
client blocks (the Lua interpreter's emulated mod_curl)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    with serve_apps(app) as (url,):
        yield url


@contextmanager
def serve_apps(*apps: web.Application) -> Iterator[tuple[str, ...]]:
    """Several apps in one loop (the admin and v1 listeners of one runtime, whose pools belong to a loop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            runners = []
            for app in apps:
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                runners.append(runner)
            state.update(runners=runners, urls=tuple(f"http://127.0.0.1:{r.addresses[0][1]}" for r in runners))
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-http-app", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the test HTTP app did not start")
    try:
        yield state["urls"]
    finally:
        for runner in reversed(state["runners"]):
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
