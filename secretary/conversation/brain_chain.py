"""Fallback across brains: the first that answers in time wins; the front desk closes every chain.

A brain fails when it raises, sends nothing before `first_event_s`, goes quiet for `stall_s` mid-reply or
runs past `total_s`. The chain then asks the next brain; if text had already streamed it first emits
`Retract`, so a consumer that buffers (v1) drops it and one that speaks (v2) stops the half sentence.
A brain that has sent nothing `hedge_after_s` in is hedged: the next brain starts alongside, the first to
send text or a decision wins and the other is cancelled — a hanging LLM costs the caller `hedge_after_s`,
not the first-token deadline. A brain that failed or lost a hedge without a word is benched in
`ProviderHealth` for its cool-down, so the next turns skip it at once. The timers are a `ReplySupervisor`'s
per brain; a consumer that speaks plays its filler from its own supervisor (nothing audible, whatever the
cause).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import structlog

from secretary.calls.supervisor import FAILURES, Due, ReplySupervisor, ReplyTimers
from secretary.conversation.brain import (
    Brain,
    BrainEvent,
    BrainRequest,
    Decision,
    Finished,
    ReplyWithheld,
    Retract,
    TextDelta,
)
from secretary.deadlines import Deadlines, ProviderTimeout
from secretary.provider_health import ProviderHealth
from secretary.tasks import cancel_and_wait
from secretary.usage import UsageMeter

__all__ = ["BrainChain", "Deadlines"]

log = structlog.get_logger(__name__)
KIND = "brain"
_END = object()  # a brain's stream ended


def health_key(engine: object) -> str:
    return str(getattr(engine, "health_key", None) or getattr(engine, "name", type(engine).__name__))


@dataclass(eq=False)
class _Attempt:
    """One brain asked for this reply: its stream pumped into the chain's queue, its timers."""

    brain: Brain
    position: int
    last: bool
    supervisor: ReplySupervisor
    task: asyncio.Task[None] | None = None
    streamed_text: bool = False

    @property
    def key(self) -> str:
        return health_key(self.brain)


_Item = tuple[_Attempt, "BrainEvent | BaseException | object"]


class BrainChain:
    def __init__(
        self,
        brains: Sequence[Brain],
        deadlines: Deadlines,
        *,
        health: ProviderHealth | None = None,
        usage: UsageMeter | None = None,
        hedge_after_s: float | None = None,
    ) -> None:
        if not brains:
            raise ValueError("a brain chain needs at least one brain")
        self._brains = list(brains)
        self._deadlines = deadlines
        self._health = health
        self._usage = usage or UsageMeter()
        self._hedge_after = hedge_after_s
        self.name = "+".join(b.name for b in brains)

    def _timers(self, last: bool) -> ReplyTimers:
        """The last brain (the front desk) is never timed: it is the answer of last resort."""
        if last:
            return ReplyTimers()
        d = self._deadlines
        return ReplyTimers(hedge_after_s=self._hedge_after, first_byte_s=d.first_event_s, stall_s=d.stall_s,
                           total_s=d.total_s)  # fmt: skip

    def _candidates(self) -> Iterator[tuple[int, Brain, bool]]:
        """The brains to ask, in order: benched ones are skipped (never the last)."""
        for position, brain in enumerate(self._brains):
            last = position == len(self._brains) - 1
            if not last and self._health is not None and not self._health.available(health_key(brain)):
                self._usage.skipped(KIND, brain.name)
                continue
            yield position, brain, last

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        candidates = self._candidates()
        running: list[_Attempt] = []
        failed: list[str] = []
        winner: _Attempt | None = None

        def start() -> bool:
            """Asks the next brain of the chain; False when there is none left."""
            nxt = next(candidates, None)
            if nxt is None:
                return False
            position, brain, last = nxt
            attempt = _Attempt(brain, position, last, ReplySupervisor(self._timers(last)))
            attempt.supervisor.provider_started(loop.time())
            attempt.task = asyncio.create_task(self._pump(attempt, request, queue), name=f"brain {brain.name}")
            running.append(attempt)
            return True

        def fail(attempt: _Attempt, error: BaseException) -> None:
            running.remove(attempt)
            failed.append(attempt.brain.name)
            self._usage.failure(KIND, attempt.brain.name)
            if self._health is not None and not isinstance(error, ReplyWithheld):
                self._health.failed(attempt.key, error, getattr(attempt.brain, "probe", None))
            log.warning("brain_failed", brain=attempt.brain.name, error=str(error) or type(error).__name__)

        start()
        try:
            while True:
                now = loop.time()
                for attempt in list(running):
                    for due in attempt.supervisor.poll(now):
                        if due is Due.HEDGE and winner is None and attempt is running[-1]:
                            log.info("brain_hedged", brain=attempt.brain.name, after_s=self._hedge_after)
                            start()
                        elif due in FAILURES and attempt in running:
                            await cancel_and_wait(attempt.task)
                            fail(attempt, ProviderTimeout(f"{attempt.brain.name} {_REASONS[due]}"))
                            if attempt is winner and attempt.streamed_text:
                                yield Retract()
                            if attempt is winner:
                                winner = None
                if not running and not start():
                    raise RuntimeError("the brain chain's last brain never answered")  # pragma: no cover
                wake = min((at for a in running if (at := a.supervisor.next_due()) is not None), default=None)
                timeout = None if wake is None or math.isinf(wake) else max(0.0, wake - loop.time())
                try:  # not `wait_for`: on 3.11 it swallows a cancel that lands as the item arrives
                    async with asyncio.timeout(timeout):
                        attempt, item = await queue.get()
                except TimeoutError:
                    continue
                if attempt not in running:
                    continue  # a cancelled brain's last word
                if isinstance(item, BaseException):
                    if attempt.last:
                        raise item
                    fail(attempt, item)
                    if attempt is winner:
                        winner = None
                        if attempt.streamed_text:
                            yield Retract()
                    continue
                attempt.supervisor.provider_message(loop.time())
                if winner is None and (item is _END or isinstance(item, TextDelta | Decision | Finished)):
                    winner = attempt  # the first brain to say anything: the others stop
                    losers = [a for a in running if a is not attempt]
                    await cancel_and_wait(*(a.task for a in losers))
                    for loser in losers:
                        fail(loser, ProviderTimeout(f"{loser.brain.name} lost a hedge: nothing in time"))
                if attempt is not winner:
                    continue
                if item is _END or isinstance(item, Finished):
                    finished = item if isinstance(item, Finished) else Finished(attempt.brain.name)
                    yield self._served(attempt, finished, failed)
                    return
                if isinstance(item, TextDelta):
                    attempt.streamed_text = True
                if isinstance(item, TextDelta | Decision | Retract):
                    yield item
        finally:
            await cancel_and_wait(*(a.task for a in running))

    def _served(self, attempt: _Attempt, finished: Finished, failed: list[str]) -> Finished:
        brain = attempt.brain
        if self._health is not None and not attempt.last:
            self._health.succeeded(attempt.key)
        self._usage.served(KIND, brain.name, fallback=attempt.position > 0)
        self._usage.tokens(brain.name, finished.prompt_tokens, finished.completion_tokens)
        return Finished(
            brain.name,
            finished.understood,
            tuple(failed),
            finished.prompt_tokens,
            finished.completion_tokens,
            finished.desk,
            finished.personal,
        )

    @staticmethod
    async def _pump(attempt: _Attempt, request: BrainRequest, queue: asyncio.Queue[_Item]) -> None:
        """Reads one brain's stream into the chain's queue, its failure included."""
        stream = attempt.brain.stream(request)
        try:
            async for event in stream:
                queue.put_nowait((attempt, event))
            queue.put_nowait((attempt, _END))
        except Exception as exc:  # any provider error means: next brain
            queue.put_nowait((attempt, exc))
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # a close that fails changes nothing for the caller
                    log.debug("brain_close_failed", brain=attempt.brain.name, error=repr(exc))


_REASONS = {Due.NO_FIRST_BYTE: "sent nothing in time", Due.STALLED: "stalled", Due.TOO_LONG: "ran too long"}
