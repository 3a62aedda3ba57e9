"""`ReplySupervisor`: the timers of a turn that awaits the secretary's voice, in one sans-I/O object.

In the spirit of h11 it never waits and never reads a clock: its driver reports what happened, with the time
(`caller_finished`, `greeting_owed`, `provider_started`, `provider_message`, `audio_queued`, `reply_done`),
asks `poll(now)` what has fallen due, and sleeps until `next_due()`. Two clocks run:
- the caller's: from the end of their turn until something is audible. `filler_after_s` in, the filler is
  due (once a turn); `give_up_s` in, the reply is abandoned (the apology, then the fallback engine or
  destination).
- the provider's: from the request until its first message, then between messages. `hedge_after_s` without
  a first message, the next provider of the chain may start alongside (once); `first_byte_s` without one,
  `stall_s` quiet once started, or `total_s` in all, the provider has failed.

Every timed part drives one: the brain chain (per brain: hedge, first token, stall, total), the STT chain
(per cloud engine: hedge to the local one, first result), every provider stream read through `PacedStream`
(TTS chains, Deepgram's results: first byte, stall, total), the engine chain (a cloud engine's connect,
greeting, reply and mid-reply stall deadlines and the filler), the pipeline engine (the filler, and the
streaming STT's end of turn after our VAD heard it) and the session (the last-resort reply deadline). v1 gets
its turn deadlines and hedging through the brain and speech chains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Due(StrEnum):
    FILLER = "filler"  # nothing audible `filler_after_s` after the caller's turn: play the filler
    HEDGE = "hedge"  # the provider sent nothing `hedge_after_s` in: start the next one alongside
    NO_FIRST_BYTE = "no_first_byte"  # the provider sent nothing by `first_byte_s`: it failed
    STALLED = "stalled"  # the provider's started reply went quiet for `stall_s`: it failed
    TOO_LONG = "too_long"  # the provider ran past `total_s`: it failed
    GIVE_UP = "give_up"  # nothing audible `give_up_s` after the caller's turn: apologise and hand over


FAILURES = frozenset({Due.NO_FIRST_BYTE, Due.STALLED, Due.TOO_LONG})


@dataclass(frozen=True, slots=True)
class ReplyTimers:
    """Seconds; `None` or `math.inf`: that timer never fires."""

    filler_after_s: float | None = None
    give_up_s: float | None = None
    hedge_after_s: float | None = None
    first_byte_s: float = math.inf
    stall_s: float = math.inf
    total_s: float = math.inf


def _at(start: float | None, after: float | None) -> float | None:
    if start is None or after is None or math.isinf(after):
        return None
    return start + after


class ReplySupervisor:
    def __init__(self, timers: ReplyTimers) -> None:
        self.timers = timers
        self._awaiting_since: float | None = None  # the caller's clock
        self._filler_due = False
        self._requested: float | None = None  # the provider's clock
        self._last_message: float | None = None
        self._hedged = False
        self._failed = False

    # -- what the driver reports -----------------------------------------------------------------------------

    def caller_finished(self, now: float) -> None:
        """The caller's turn ended (or a greeting is owed): their clock starts, with a filler of its own."""
        self._awaiting_since = now
        self._filler_due = True

    def greeting_owed(self, now: float) -> None:
        """The call is connected and its greeting is owed: the give-up clock starts, without a filler."""
        self._awaiting_since = now
        self._filler_due = False

    def audio_queued(self, now: float) -> None:
        """The caller hears the secretary: the turn is answered, neither filler nor give-up applies."""
        self._awaiting_since = None
        self._filler_due = False

    def filler_played(self) -> None:
        """A filler went out by other means (e.g. a takeover's apology stands in for it)."""
        self._filler_due = False

    def reply_done(self, now: float) -> None:
        """Nothing is awaited any more (the reply ended, or was cut)."""
        self._awaiting_since = None
        self._filler_due = False
        self._requested = self._last_message = None

    def provider_started(self, now: float) -> None:
        """A request went to a provider: its first-byte, hedge and total clocks start."""
        self._requested = now
        self._last_message = None
        self._hedged = self._failed = False

    def provider_done(self) -> None:
        """The provider's part is over (its answer came, or it was given up): its clocks stop, the caller's
        go on."""
        self._requested = self._last_message = None

    def provider_message(self, now: float) -> None:
        """The provider sent something: no hedge any more; the stall clock restarts."""
        self._last_message = now

    @property
    def awaiting_since(self) -> float | None:
        """When the caller's clock started (`None`: nothing is awaited)."""
        return self._awaiting_since

    @property
    def awaiting(self) -> bool:
        return self._awaiting_since is not None

    @property
    def started(self) -> bool:
        """Whether the provider's first message came."""
        return self._last_message is not None

    # -- what is due -----------------------------------------------------------------------------------------

    def _deadlines(self) -> dict[Due, float]:
        timers, due = self.timers, {}
        if self._filler_due and (at := _at(self._awaiting_since, timers.filler_after_s)) is not None:
            due[Due.FILLER] = at
        if (at := _at(self._awaiting_since, timers.give_up_s)) is not None:
            due[Due.GIVE_UP] = at
        if self._requested is not None and not self._failed:
            if self._last_message is None:
                if not self._hedged and (at := _at(self._requested, timers.hedge_after_s)) is not None:
                    due[Due.HEDGE] = at
                if (at := _at(self._requested, timers.first_byte_s)) is not None:
                    due[Due.NO_FIRST_BYTE] = at
            elif (at := _at(self._last_message, timers.stall_s)) is not None:
                due[Due.STALLED] = at
            if (at := _at(self._requested, timers.total_s)) is not None:
                due[Due.TOO_LONG] = at
        return due

    def next_due(self) -> float | None:
        """When `poll` will next have something to say (`None`: nothing is armed)."""
        return min(self._deadlines().values(), default=None)

    def poll(self, now: float) -> list[Due]:
        """What fell due by `now`, each reported once (a failure ends the provider's clock; a give-up ends
        the caller's)."""
        fired = [due for due, at in self._deadlines().items() if at <= now]
        for due in fired:
            if due is Due.FILLER:
                self._filler_due = False
            elif due is Due.HEDGE:
                self._hedged = True
            elif due is Due.GIVE_UP:
                self._awaiting_since = None
                self._filler_due = False
            else:
                self._failed = True
        if any(due in FAILURES for due in fired):  # one failure is enough to report
            first = next(due for due in fired if due in FAILURES)
            fired = [due for due in fired if due not in FAILURES or due is first]
        return fired
