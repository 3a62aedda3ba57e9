"""The queue in front of document ingest: each domain waits its turn, so one domain's uploads can't starve another's.

Two bounds: a domain has at most `per_domain` documents being added at once (queued or at work; one more is
refused with 429, not queued without end), and at most `slots` of them, across all domains, are at work. A
freed slot goes to the domain that has waited longest since its last turn (round robin between domains,
first come first served within one), not to whoever queued the most.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from secretary.errors import SecretaryError


class TooManyDocuments(SecretaryError):
    """The domain already has as many documents being added as it may: try again when one is done."""

    code = "too_many_documents"
    http_status = 429


class DomainQueue:
    def __init__(self, slots: int, per_domain: int) -> None:
        self._capacity = slots
        self._free = slots
        self._per_domain = per_domain
        self._pending: Counter[UUID] = Counter()
        self._waiting: OrderedDict[UUID, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def working(self) -> int:
        """Slots taken now (jobs at work)."""
        return self._capacity - self._free

    def pending(self, domain: UUID) -> int:
        """The domain's documents being added: admitted and not yet done."""
        return self._pending[domain]

    @asynccontextmanager
    async def admitted(self, domain: UUID) -> AsyncIterator[None]:
        """Counts one document of the domain for as long as it is being added; raises `TooManyDocuments`
        when the domain already has `per_domain`."""
        if self._pending[domain] >= self._per_domain:
            raise TooManyDocuments(
                f"this domain already has {self._per_domain} document(s) being added; try again when one is done"
            )
        self._pending[domain] += 1
        try:
            yield
        finally:
            self._pending[domain] -= 1
            if not self._pending[domain]:
                del self._pending[domain]

    @asynccontextmanager
    async def turn(self, domain: UUID) -> AsyncIterator[None]:
        """Holds one of the slots, waiting for the domain's turn when all are taken."""
        if self._free and not self._waiting:
            self._free -= 1
        else:
            granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(domain, deque()).append(granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # the slot came with the cancellation: hand it on
                else:
                    self._forget(domain, granted)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """The slot goes to the first waiting domain, which then moves to the back of the line."""
        while self._waiting:
            domain, waiters = next(iter(self._waiting.items()))
            granted = waiters.popleft()
            if waiters:
                self._waiting.move_to_end(domain)
            else:
                del self._waiting[domain]
            if not granted.done():  # a waiter cancelled a moment ago is passed over
                granted.set_result(None)
                return
        self._free += 1

    def _forget(self, domain: UUID, granted: asyncio.Future[None]) -> None:
        waiters = self._waiting.get(domain)
        if waiters is not None and granted in waiters:
            waiters.remove(granted)
            if not waiters:
                del self._waiting[domain]
