"""`ReplySupervisor` on a fake clock (every timer), and the brain chain's hedging with scripted brains."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.conversation.brain import BrainEvent, BrainRequest, Finished, Retract, TextDelta
from secretary.conversation.brain_chain import BrainChain, Deadlines
from secretary.provider_health import ProviderHealth
from secretary.usage import UsageMeter
from tests.conftest import acme_config

TIMERS = ReplyTimers(filler_after_s=1.0, give_up_s=3.0, hedge_after_s=0.8, first_byte_s=4.0, stall_s=1.0,
                     total_s=12.0)  # fmt: skip


def test_nothing_is_due_before_anything_is_awaited() -> None:
    supervisor = ReplySupervisor(TIMERS)
    assert supervisor.next_due() is None and supervisor.poll(100.0) == []


def test_the_filler_comes_once_a_turn_then_the_give_up() -> None:
    supervisor = ReplySupervisor(TIMERS)
    supervisor.caller_finished(10.0)
    assert supervisor.next_due() == 11.0
    assert supervisor.poll(10.9) == []
    assert supervisor.poll(11.0) == [Due.FILLER]
    assert supervisor.poll(12.0) == []  # once
    assert supervisor.next_due() == 13.0
    assert supervisor.poll(13.0) == [Due.GIVE_UP]
    assert supervisor.poll(20.0) == [] and not supervisor.awaiting


def test_audio_cancels_filler_and_give_up_and_a_new_turn_rearms_them() -> None:
    supervisor = ReplySupervisor(TIMERS)
    supervisor.caller_finished(0.0)
    supervisor.audio_queued(0.5)
    assert supervisor.poll(5.0) == [] and supervisor.next_due() is None
    supervisor.caller_finished(6.0)
    assert supervisor.poll(7.0) == [Due.FILLER]
    supervisor.filler_played()
    supervisor.caller_finished(8.0)  # the next turn gets its own filler
    assert supervisor.poll(9.0) == [Due.FILLER]


def test_a_provider_that_sends_nothing_is_hedged_then_failed() -> None:
    supervisor = ReplySupervisor(TIMERS)
    supervisor.provider_started(0.0)
    assert supervisor.next_due() == 0.8
    assert supervisor.poll(0.8) == [Due.HEDGE]
    assert supervisor.poll(1.0) == []  # hedged once
    assert supervisor.poll(4.0) == [Due.NO_FIRST_BYTE]
    assert supervisor.poll(30.0) == [] and supervisor.next_due() is None  # failed once


def test_a_started_reply_that_goes_quiet_has_stalled() -> None:
    supervisor = ReplySupervisor(TIMERS)
    supervisor.provider_started(0.0)
    supervisor.provider_message(0.5)
    assert supervisor.started and supervisor.next_due() == 1.5  # no hedge once it spoke
    supervisor.provider_message(1.4)
    assert supervisor.poll(2.0) == []
    assert supervisor.poll(2.4) == [Due.STALLED]


def test_a_provider_that_runs_too_long_fails_once() -> None:
    supervisor = ReplySupervisor(ReplyTimers(stall_s=1.0, total_s=2.0))
    supervisor.provider_started(0.0)
    for moment in (0.5, 1.0, 1.5, 1.9):
        supervisor.provider_message(moment)
    assert supervisor.poll(2.0) == [Due.TOO_LONG]
    assert supervisor.poll(5.0) == []


def test_reply_done_disarms_everything() -> None:
    supervisor = ReplySupervisor(TIMERS)
    supervisor.caller_finished(0.0)
    supervisor.provider_started(0.0)
    supervisor.reply_done(0.2)
    assert supervisor.next_due() is None and supervisor.poll(50.0) == []


def test_unset_timers_never_fire() -> None:
    supervisor = ReplySupervisor(ReplyTimers())
    supervisor.caller_finished(0.0)
    supervisor.provider_started(0.0)
    assert supervisor.next_due() is None and supervisor.poll(1e9) == []


# -- hedging in the brain chain (scripted brains: a hung one waits until it is cancelled) ---------------------


class Scripted:
    def __init__(self, name: str, events: list[BrainEvent], *, hang: bool = False, hang_after: int = -1) -> None:
        self.name = name
        self._events = events
        self._hang = hang
        self._hang_after = hang_after
        self.asked = 0
        self.cancelled = False

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        self.asked += 1
        try:
            if self._hang:
                await asyncio.Event().wait()
            for index, event in enumerate(self._events):
                if index == self._hang_after:
                    await asyncio.Event().wait()
                yield event
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def request() -> BrainRequest:
    return BrainRequest(config=acme_config(), history=(), caller_text="Hello?", now=datetime.now(UTC))


PATIENT = Deadlines(first_event_s=60.0, stall_s=60.0, total_s=120.0)


async def test_a_hung_brain_is_hedged_the_next_answers_and_the_hung_one_is_cancelled() -> None:
    hung = Scripted("cloud", [], hang=True)
    desk = Scripted("front_desk", [TextDelta("We are on Main Street."), Finished("front_desk")])
    usage, health = UsageMeter(), ProviderHealth(cool_down_s=30.0, probe_interval_s=60.0, probe_timeout_s=1.0)
    chain = BrainChain([hung, desk], PATIENT, health=health, usage=usage, hedge_after_s=0.01)

    events = [event async for event in chain.stream(request())]

    assert events == [TextDelta("We are on Main Street."), Finished("front_desk", failed=("cloud",))]
    assert hung.cancelled and desk.asked == 1
    assert usage.counters == {"failures.brain.cloud": 1, "brain.front_desk.requests": 1, "fallbacks.brain": 1}
    assert not health.available("cloud")  # benched as for a failover: the next turn skips it
    again = [event async for event in chain.stream(request())]
    assert again[-1] == Finished("front_desk") and hung.asked == 1


async def test_the_hedged_brain_wins_when_it_speaks_first_and_the_hedge_is_cancelled() -> None:
    slow = Scripted("cloud", [TextDelta("Cloud here."), Finished("cloud")])
    hedge = Scripted("backup", [], hang=True)
    desk = Scripted("front_desk", [TextDelta("Desk."), Finished("front_desk")])
    chain = BrainChain([slow, hedge, desk], PATIENT, hedge_after_s=30.0)

    events = [event async for event in chain.stream(request())]

    assert events == [TextDelta("Cloud here."), Finished("cloud")]
    assert hedge.asked == 0 and desk.asked == 0  # answered before the hedge delay: nobody else asked


async def test_a_brain_that_stalls_mid_reply_is_retracted_and_the_next_answers() -> None:
    stalling = Scripted("cloud", [TextDelta("Our office"), TextDelta(" is"), Finished("cloud")], hang_after=1)
    desk = Scripted("front_desk", [TextDelta("Main Street."), Finished("front_desk")])
    chain = BrainChain([stalling, desk], Deadlines(first_event_s=60.0, stall_s=0.01, total_s=120.0))

    events = [event async for event in chain.stream(request())]

    assert events == [TextDelta("Our office"), Retract(), TextDelta("Main Street."),
                      Finished("front_desk", failed=("cloud",))]  # fmt: skip
    assert stalling.cancelled


async def test_a_failing_brain_fails_over_at_once() -> None:
    class Broken(Scripted):
        async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
            raise ConnectionError("refused")
            yield  # pragma: no cover

    desk = Scripted("front_desk", [TextDelta("Desk."), Finished("front_desk")])
    chain = BrainChain([Broken("cloud", []), desk], PATIENT, hedge_after_s=30.0)
    events = [event async for event in chain.stream(request())]
    assert events[-1] == Finished("front_desk", failed=("cloud",))
