"""A background task that runs one pass now, then again every `interval_s` or sooner when woken.

The courier and the spilled call records use it: their work waits out an outage instead of failing, so a
pass that meets an unavailable dependency is logged and simply tried again on the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from secretary.errors import DependencyUnavailable
from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


class RetryLoop:
    def __init__(self, name: str, work: Callable[[], Awaitable[object]], interval_s: float) -> None:
        self._name = name
        self._work = work
        self._interval = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._work()
            except DependencyUnavailable as exc:
                log.warning("background_waiting", task=self._name, reason=exc.message)
            except Exception:
                log.exception("background_pass_failed", task=self._name)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):  # (`wait_for` on 3.11 may swallow a cancel)
                    await self._wake.wait()
