"""Runs the real ivr_service on a free loopback port in a background thread with its own event loop, for
callers that block (the Lua interpreter's emulated mod_curl) or for end-to-end tests over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from ivr_service.app import create_app
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels


@contextmanager
def live_ivr_service(settings: Settings, models: LocalModels) -> Iterator[tuple[str, Runtime]]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            runtime = Runtime.create(settings, models=models)
            runner = web.AppRunner(create_app(runtime, own_runtime=True), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            state.update(runner=runner, runtime=runtime, url=f"http://127.0.0.1:{port}")
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="ivr-service", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("ivr_service did not start")
    try:
        yield str(state["url"]), state["runtime"]  # type: ignore[misc]
    finally:
        runner = state["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
