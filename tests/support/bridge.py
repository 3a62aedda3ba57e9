"""The real bridge on a free loopback port, in the test's event loop, with the simulated FreeSWITCH ESL
server it controls calls through."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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


@dataclass
class LiveBridge:
    server: BridgeServer
    runtime: Runtime
    switch: EslServerSimulator | None
    esl: EslClient | None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    async def call_over(self, call_uuid: str, timeout_s: float = 10.0) -> CallRecord:
        """Waits until the bridge has finished the call (its record saved) and returns the record."""
        session = self.server.sessions.get(call_uuid)
        async with asyncio.timeout(timeout_s):
            if session is not None:
                await session.finished.wait()
            record = await self.runtime.call_records.get(uuid.UUID(ACME), uuid.UUID(call_uuid))
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
