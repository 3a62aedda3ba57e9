"""The echo engine: plays the caller's own audio back in chunks. No model, no brain: it exists to measure
the bridge's own cost per call (`bench/bridge_load.py`) and to check the transport end to end."""

from __future__ import annotations

import asyncio

from bridge.engines.base import CallContext


class EchoEngine:
    name = "echo"

    def __init__(self, sample_rate: int, chunk_ms: int = 100) -> None:
        self._chunk = 2 * sample_rate * chunk_ms // 1000
        self._pending = bytearray()
        self._call: CallContext | None = None

    def feed(self, pcm: bytes) -> None:
        if self._call is None:
            return
        self._pending += pcm
        if len(self._pending) >= self._chunk:
            self._call.playback.enqueue(bytes(self._pending))
            self._pending.clear()

    async def run(self, call: CallContext) -> None:
        self._call = call
        await asyncio.Event().wait()  # runs until the session ends the call

    async def close(self) -> None:
        self._call = None
