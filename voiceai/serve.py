"""Runs the transports in one process until SIGINT/SIGTERM, sharing one `Runtime` (models load once)."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from ivr_service.app import create_app
from secretary.runtime import Runtime
from secretary.settings import Settings

log = structlog.get_logger(__name__)


async def serve(settings: Settings, *, ivr: bool = True, bridge: bool = True) -> None:
    runtime = Runtime.create(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("warming_up", detail="loading the offline speech models")
    await runtime.warm_up()
    runner: web.AppRunner | None = None
    bridge_server = None
    try:
        if ivr:
            runner = web.AppRunner(create_app(runtime), access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, settings.ivr.host, settings.ivr.port).start()
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
