"""Fallback across brains: the first that answers in time wins; the front desk closes every chain.

A brain fails when it raises, sends nothing before `first_event_s`, goes quiet for `stall_s` mid-reply or
runs past `total_s`. The chain then asks the next brain; if text had already streamed it first emits
`Retract`, so a consumer that buffers (v1) drops it and one that speaks (v2) stops the half sentence.
A failed brain is benched in `ProviderHealth` for its cool-down, so the next turns skip it at once.
When nothing has come `late_after_s` into the reply, the chain emits `Late` (once): the filler hook.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence

import structlog

from secretary.conversation.brain import (
    Brain,
    BrainEvent,
    BrainRequest,
    Decision,
    Finished,
    Late,
    Retract,
    TextDelta,
)
from secretary.deadlines import NOT_YET, Deadlines, PacedStream, within_deadlines
from secretary.provider_health import ProviderHealth
from secretary.usage import UsageMeter

__all__ = ["BrainChain", "Deadlines", "with_deadlines"]

log = structlog.get_logger(__name__)
KIND = "brain"
NO_DEADLINES = Deadlines(first_event_s=math.inf, stall_s=math.inf, total_s=math.inf)
with_deadlines = within_deadlines


def health_key(engine: object) -> str:
    return str(getattr(engine, "health_key", None) or getattr(engine, "name", type(engine).__name__))


class BrainChain:
    def __init__(
        self,
        brains: Sequence[Brain],
        deadlines: Deadlines,
        *,
        health: ProviderHealth | None = None,
        usage: UsageMeter | None = None,
        late_after_s: float | None = None,
    ) -> None:
        if not brains:
            raise ValueError("a brain chain needs at least one brain")
        self._brains = list(brains)
        self._deadlines = deadlines
        self._health = health
        self._usage = usage or UsageMeter()
        self._late_after = late_after_s
        self.name = "+".join(b.name for b in brains)

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        failed: list[str] = []
        paced: PacedStream[BrainEvent] | None = None
        late_at: float | None = None
        replied = False  # a text delta, a decision or the filler has gone out this reply
        for position, brain in enumerate(self._brains):
            last = position == len(self._brains) - 1
            key = health_key(brain)
            if not last and self._health is not None and not self._health.available(key):
                self._usage.skipped(KIND, brain.name)
                continue
            paced = PacedStream(brain.stream(request), NO_DEADLINES if last else self._deadlines, brain.name)
            if late_at is None and self._late_after is not None:
                late_at = asyncio.get_running_loop().time() + self._late_after
            streamed_text = False
            try:
                while True:
                    until = late_at if not replied else None
                    try:
                        event = await paced.next(until)
                    except StopAsyncIteration:
                        finished = Finished(brain.name)
                        break
                    if event is NOT_YET:
                        replied = True  # the filler goes out once
                        yield Late(self._late_after or 0.0)
                        continue
                    if isinstance(event, Finished):
                        finished = event
                        break
                    if isinstance(event, TextDelta | Decision):
                        replied = True
                        streamed_text = streamed_text or isinstance(event, TextDelta)
                    if isinstance(event, TextDelta | Decision | Retract):
                        yield event
            except Exception as exc:  # any provider error means: next brain
                if last:
                    raise
                failed.append(brain.name)
                self._usage.failure(KIND, brain.name)
                if self._health is not None:
                    self._health.failed(key, exc, getattr(brain, "probe", None))
                log.warning("brain_failed", brain=brain.name, error=str(exc) or type(exc).__name__)
                if streamed_text:
                    yield Retract()
                continue
            finally:
                await paced.aclose()
            if self._health is not None and not last:
                self._health.succeeded(key)
            self._usage.served(KIND, brain.name, fallback=position > 0)
            self._usage.tokens(brain.name, finished.prompt_tokens, finished.completion_tokens)
            yield Finished(
                brain.name, finished.understood, tuple(failed), finished.prompt_tokens, finished.completion_tokens
            )
            return
