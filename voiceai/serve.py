"""Runs the transports in one process until SIGINT/SIGTERM, sharing one `Runtime` (models load once)."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import signal

import structlog
from aiohttp import web

from ivr_service.app import create_admin_app, create_app
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


async def start_http(runtime: Runtime) -> list[web.AppRunner]:
    """The v1 listener and, with the admin API enabled, the admin listener: two ports, so exposing the admin
    API (to an admin network, behind a proxy) exposes nothing FreeSWITCH's v1 routes allow."""
    settings = runtime.settings
    if settings.ivr.shared_secret is None and not _loopback(settings.ivr.host):
        log.warning("ivr_exposed", host=settings.ivr.host, detail="set ivr.shared_secret")
    listeners = [("ivr", create_app(runtime), settings.ivr.host, settings.ivr.port)]
    if settings.admin.enabled:
        listeners.append(("admin", create_admin_app(runtime), settings.admin.host, settings.admin.port))
    runners: list[web.AppRunner] = []
    try:
        for name, app, host, port in listeners:
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            await LimitedSite(runner, host, port, settings.ivr.max_connections).start()
            log.info(f"{name}_listening", url=f"http://{host}:{runner.addresses[0][1]}")
    except BaseException:
        await stop_http(runners)
        raise
    return runners


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def stop_http(runners: list[web.AppRunner]) -> None:
    for runner in reversed(runners):
        await runner.cleanup()


async def serve(settings: Settings, *, ivr: bool = True, bridge: bool = True) -> None:
    runtime = Runtime.create(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("warming_up", detail="loading the offline speech models")
    await runtime.warm_up()
    freeze_startup_heap()
    runners: list[web.AppRunner] = []
    bridge_server = None
    try:
        if ivr:
            runners = await start_http(runtime)
        runtime.start_background()  # delivers messages, saves spilled records (also when only the bridge runs)
        if bridge:
            from bridge.server import start_bridge

            bridge_server = await start_bridge(runtime)
            log.info("bridge_listening", url=f"ws://{settings.bridge.host}:{settings.bridge.port}/stream")
        await stop.wait()
    finally:
        log.info("stopping")
        if bridge_server is not None:
            await bridge_server.close()
        await stop_http(runners)
        await runtime.close()
