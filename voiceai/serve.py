"""Runs the transports in one process until SIGINT/SIGTERM, sharing one `Runtime` (models load once)."""

from __future__ import annotations

import asyncio
import gc
import signal

import structlog
from aiohttp import web

from ivr_service.app import create_app
from ivr_service.http_server import LimitedSite
from secretary.runtime import Runtime
from secretary.settings import Settings

log = structlog.get_logger(__name__)


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, models, settings) out of the cyclic GC's sight.

    Measured with bench/bridge_load.py: a full collection over the ~250k start-up objects paused the event
    loop for ~100 ms, every call's audio with it. Frozen objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


async def serve(settings: Settings, *, ivr: bool = True, bridge: bool = True) -> None:
    runtime = Runtime.create(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("warming_up", detail="loading the offline speech models")
    await runtime.warm_up()
    freeze_startup_heap()
    runner: web.AppRunner | None = None
    bridge_server = None
    try:
        if ivr:
            runner = web.AppRunner(create_app(runtime), access_log=None, handle_signals=False)
            await runner.setup()
            await LimitedSite(runner, settings.ivr.host, settings.ivr.port, settings.ivr.max_connections).start()
            log.info("ivr_listening", url=f"http://{settings.ivr.host}:{settings.ivr.port}")
        runtime.courier.start()  # delivers taken messages (also when only the bridge runs here)
        if bridge:
            from bridge.server import start_bridge

            bridge_server = await start_bridge(runtime)
            log.info("bridge_listening", url=f"ws://{settings.bridge.host}:{settings.bridge.port}/stream")
        await stop.wait()
    finally:
        log.info("stopping")
        if bridge_server is not None:
            await bridge_server.close()
        if runner is not None:
            await runner.cleanup()
        await runtime.close()
