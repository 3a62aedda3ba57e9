"""The real bridge on a free loopback port, in the test's event loop, with the simulated FreeSWITCH ESL
server it controls calls through."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from bridge.engines.registry import EngineRegistry
from bridge.server import BridgeServer
from freeswitch.esl import EslClient
from freeswitch.esl_server_sim import EslServerSimulator
from secretary.calls.models import CallRecord
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES

ACME = "d0000000-0001-4000-8000-000000000001"
# The filler's production deadline (1 s of silence after the caller's turn) fires on a loaded machine while
# Whisper and Piper wait for a core, and the caller hears "One moment" where the test listens for the answer:
# tests that don't pass `fallback=` get a margin; those about the filler set their own.
PATIENT_FILLER = {"late_after_s": 10.0}


@dataclass
class LiveBridge:
    server: BridgeServer
    runtime: Runtime
    switch: EslServerSimulator | None
    esl: EslClient | None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    async def call_over(self, call_uuid: str, timeout_s: float = 10.0, domain_uuid: str = ACME) -> CallRecord:
        """Waits until the bridge has finished the call (its record saved) and returns the record."""
        session = self.server.sessions.get(call_uuid)
        async with asyncio.timeout(timeout_s):
            if session is not None:
                await session.finished.wait()
            record = await self.runtime.call_records.get(uuid.UUID(domain_uuid), uuid.UUID(call_uuid))
        assert record is not None, "the call ended without a record"
        return record

    def counter(self, name: str, **labels: str) -> float:
        value = self.runtime.metrics.registry.get_sample_value(name + "_total", labels or None)
        return value or 0.0


def secretaries_in(mode: Literal["module", "event"], folder: Path) -> Path:
    """The example secretaries with the given playback mode."""
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    for secretary in document["secretaries"]:
        secretary["playback_mode"] = mode
    path = folder / f"secretaries-{mode}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def live_bridge(
    make_settings: Callable[..., Settings],
    models: LocalModels,
    *,
    with_esl: bool = True,
    esl_later: bool = False,
    engines: EngineRegistry | None = None,
    playback_mode: Literal["module", "event"] = "module",
    **bridge: Any,
) -> AsyncIterator[LiveBridge]:
    """`esl_later`: ESL is down when the bridge starts; the test starts `switch` on `switch.port` itself.
    `playback_mode`: the example secretaries' (unless `secretaries_file` is given); `module` by default, as
    `SimulatedCall` is a playback build unless told `mode="event"` (the community build)."""
    switch = EslServerSimulator() if with_esl or esl_later else None
    if switch is not None and esl_later:
        switch.port = free_port()
    esl_port = (await switch.start() if with_esl else switch.port) if switch is not None else 1  # 1: nobody
    overrides = {k: bridge.pop(k) for k in list(bridge) if k in Settings.model_fields}
    if "secretaries_file" not in overrides:
        overrides["secretaries_file"] = secretaries_in(playback_mode, make_settings().data_dir.parent)
    overrides.setdefault("fallback", PATIENT_FILLER)
    settings = make_settings(bridge={"esl": {"port": esl_port, "reconnect_max_s": 0.5}, **bridge}, **overrides)
    runtime = Runtime.create(settings, models=models)
    esl = EslClient(settings.bridge.esl)
    esl.start()
    if with_esl:
        assert await esl.wait_connected(5), "the bridge did not connect to the simulated ESL server"
    server = await BridgeServer(runtime, engines=engines, esl=esl).start(port=0)
    try:
        yield LiveBridge(server, runtime, switch, esl)
    finally:
        await server.close()
        await runtime.close()
        if switch is not None:
            await switch.close()


@contextmanager
def bridge_process(
    settings: Settings, engine: str = "echo", start_timeout_s: float = 90.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`voiceai serve --bridge-only` in a process of its own (no ESL), on the settings' call-state store, record
    folder and secretaries: a bridge a test can kill (`process.kill()`) as a crash would. Yields its URL."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("VOICEAI_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {
        "VOICEAI_CONFIG": "/nonexistent",
        "VOICEAI_BRIDGE__PORT": str(port),
        "VOICEAI_BRIDGE__ENGINE": engine,
        "VOICEAI_BRIDGE__ESL__ENABLED": "false",
        "VOICEAI_DATA_DIR": str(settings.data_dir),
        "VOICEAI_SPOOL__DIR": str(settings.spool.dir),
        "VOICEAI_SECRETARIES_FILE": str(settings.secretaries_file),
        "VOICEAI_CONFIG_CACHE_S": "0",
        "VOICEAI_FALLBACK__LATE_AFTER_S": str(PATIENT_FILLER["late_after_s"]),
    }
    if settings.redis_url:
        env["VOICEAI_REDIS_URL"] = settings.redis_url
    root = Path(__file__).resolve().parent.parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "voiceai", "serve", "--bridge-only"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", process, start_timeout_s)
        yield f"ws://127.0.0.1:{port}", process
    finally:
        process.kill()
        process.wait(30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bridge process exited with {process.returncode}")
        try:
            with urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (URLError, OSError):
            time.sleep(0.2)  # it is still loading its models
    raise RuntimeError("the bridge process did not come up")


@contextmanager
def bridge_thread(settings: Settings, models: LocalModels) -> Iterator[BridgeServer]:
    """The real bridge (no ESL) on `settings.bridge.port`, in a thread and event loop of its own: for tests whose
    client blocks (Playwright's sync API drives a browser from the test's thread)."""
    loop = asyncio.new_event_loop()
    runtime = Runtime.create(settings, models=models)
    server = BridgeServer(runtime)
    thread = threading.Thread(target=loop.run_forever, name="test-bridge", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        asyncio.run_coroutine_threadsafe(runtime.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
