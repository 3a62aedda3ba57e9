"""Fallback across brains: the first that answers in time wins; the front desk closes every chain.

A brain fails when it raises, sends nothing before `first_event_s`, goes quiet for `stall_s` mid-reply or
runs past `total_s`. The chain then asks the next brain; if text had already streamed it first emits
`Retract`, so a consumer that buffers (v1) drops it and one that speaks (v2) stops the half sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import structlog

from secretary.conversation.brain import Brain, BrainEvent, BrainRequest, Finished, Retract, TextDelta
from secretary.errors import ProviderFailed

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Deadlines:
    first_event_s: float = 4.0
    stall_s: float = 3.0
    total_s: float = 12.0


async def with_deadlines(events: AsyncIterator[BrainEvent], deadlines: Deadlines) -> AsyncIterator[BrainEvent]:
    """Re-yield `events`, raising `ProviderFailed` when one arrives late."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadlines.total_s
    first = True
    try:
        while True:
            wait = min(deadlines.first_event_s if first else deadlines.stall_s, end - loop.time())
            try:
                event = await asyncio.wait_for(anext(events), timeout=max(wait, 0.0))
            except StopAsyncIteration:
                return
            except TimeoutError:
                reason = "no first event" if first else "stalled"
                raise ProviderFailed(f"{reason} within {wait:.1f}s") from None
            first = False
            yield event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


class BrainChain:
    def __init__(self, brains: Sequence[Brain], deadlines: Deadlines) -> None:
        if not brains:
            raise ValueError("a brain chain needs at least one brain")
        self._brains = list(brains)
        self._deadlines = deadlines
        self.name = "+".join(b.name for b in brains)

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        failed: list[str] = []
        for position, brain in enumerate(self._brains):
            last = position == len(self._brains) - 1
            streamed_text = False
            source = brain.stream(request)
            try:
                async for event in source if last else with_deadlines(source, self._deadlines):
                    if isinstance(event, Finished):
                        yield Finished(event.brain, event.understood, tuple(failed))
                        return
                    streamed_text = streamed_text or isinstance(event, TextDelta)
                    yield event
                yield Finished(brain.name, True, tuple(failed))
                return
            except Exception as exc:  # any provider error means: next brain
                if last:
                    raise
                failed.append(brain.name)
                log.warning("brain_failed", brain=brain.name, error=str(exc) or type(exc).__name__)
                if streamed_text:
                    yield Retract()
