"""Deadlines on streamed provider output: a first-byte deadline, a stall deadline and a total limit.

`PacedStream` reads an async iterator with those limits without ever cancelling a read it will still want:
a reader may also wait "until a moment" (e.g. to emit a filler after one second) and then go on waiting for
the same pending item. Missing a deadline raises `ProviderTimeout`, which counts as a provider failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.errors import ProviderFailed
from secretary.tasks import cancel_and_wait

T = TypeVar("T")


class ProviderTimeout(ProviderFailed):
    """A provider sent nothing before its first-byte deadline, went quiet mid-stream, or ran too long."""

    code = "provider_timeout"


@dataclass(frozen=True, slots=True)
class Deadlines:
    first_event_s: float = 4.0
    stall_s: float = 3.0
    total_s: float = 12.0


class NotYet:
    """Returned by `PacedStream.next(until=…)` when the moment came before the next item."""


NOT_YET = NotYet()


class PacedStream(Generic[T]):
    """The timers are a `ReplySupervisor`'s provider clock: one implementation of first byte, stall and total
    for every provider stream."""

    def __init__(self, source: AsyncIterator[T], deadlines: Deadlines, what: str = "provider") -> None:
        self._source = source
        self._what = what
        self._pending: asyncio.Future[T] | None = None
        self._loop = asyncio.get_running_loop()
        self._timers = ReplyTimers(
            first_byte_s=deadlines.first_event_s, stall_s=deadlines.stall_s, total_s=deadlines.total_s
        )
        self._clock = ReplySupervisor(self._timers)
        self._clock.provider_started(self._loop.time())
        self._started = False

    @property
    def started(self) -> bool:
        """Whether the first item arrived (the first-byte deadline no longer applies)."""
        return self._started

    async def next(self, until: float | None = None) -> T | NotYet:
        """The next item; `NOT_YET` if loop time `until` comes first. Raises `StopAsyncIteration` at the end
        and `ProviderTimeout` when a deadline passes."""
        if self._pending is None:
            if self._started:  # the stall clock runs from the moment we ask: the consumer's time is not the provider's
                self._clock.provider_message(self._loop.time())
            self._pending = asyncio.ensure_future(anext(self._source))
        deadline = self._clock.next_due()
        wake = deadline if until is None else min(until, deadline if deadline is not None else math.inf)
        timeout = None if wake is None or math.isinf(wake) else max(0.0, wake - self._loop.time())
        await asyncio.wait({self._pending}, timeout=timeout)
        if not self._pending.done():
            fired = self._clock.poll(self._loop.time())
            if not fired:
                return NOT_YET
            await self._cancel_pending()
            raise ProviderTimeout(self._failure(fired[0]))
        pending, self._pending = self._pending, None
        item = pending.result()  # raises the source's error, or StopAsyncIteration at its end
        self._started = True
        self._clock.provider_message(self._loop.time())
        return item

    def _failure(self, due: Due) -> str:
        timers = self._timers
        if due is Due.TOO_LONG:
            return f"{self._what} ran too long (limit {timers.total_s:.1f}s)"
        if due is Due.STALLED:
            return f"{self._what} stalled (limit {timers.stall_s:.1f}s)"
        return f"{self._what} sent nothing (limit {timers.first_byte_s:.1f}s)"

    async def _cancel_pending(self) -> None:
        pending, self._pending = self._pending, None
        await cancel_and_wait(pending)

    async def aclose(self) -> None:
        await self._cancel_pending()
        close = getattr(self._source, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


async def within_deadlines(source: AsyncIterator[T], deadlines: Deadlines, what: str = "provider") -> AsyncIterator[T]:
    """Re-yield `source`, raising `ProviderTimeout` when an item is late."""
    paced = PacedStream(source, deadlines, what)
    try:
        while True:
            try:
                item = await paced.next()
            except StopAsyncIteration:
                return
            assert not isinstance(item, NotYet)
            yield item
    finally:
        await paced.aclose()
