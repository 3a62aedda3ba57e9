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
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            state.update(runner=runner, url=f"http://127.0.0.1:{runner.addresses[0][1]}")
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="test-http-app", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the test HTTP app did not start")
    try:
        yield str(state["url"])
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
