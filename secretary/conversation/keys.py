"""Keys the caller presses (DTMF), with one meaning in both modes: the turn-based service's `/dtmf` and the
realtime bridge answer with `key_reply`, and the bridge collects digits with `KeyCollector` the way the Lua
script does (`session:getDigits(8, "#", 2000, 1500)` after the key that stopped the prompt).

A directory extension puts the caller through to it, "0" to the domain's fallback destination; anything else
is not a valid choice, and the secretary asks again.
"""

from __future__ import annotations

from secretary.calls.prompts import Prompts
from secretary.conversation.actions import Action
from secretary.conversation.conversation import Reply
from secretary.tenants.config import SecretaryConfig

MAX_DIGITS = 8
FIRST_WAIT_S = 2.0  # after the first key, for the second (the Lua script's getDigits timeout)
INTER_DIGIT_S = 1.5  # between later keys
END_KEY = "#"
KEYS = frozenset("0123456789*#")
BRAIN = "dtmf"


def key_reply(config: SecretaryConfig, digits: str, prompts: Prompts) -> Reply:
    """What the secretary says to the keys `digits` (without the ending '#'), and what it does."""
    target = config.target_by_extension(digits)
    if target is not None:
        return Reply(prompts.through_to(target.name), Action.transfer(target.extension, config.context), BRAIN)
    if digits == "0":
        return Reply(prompts.operator, Action.transfer(config.fallback_destination, config.context), BRAIN)
    return Reply(prompts.not_a_choice, Action.continue_(), BRAIN)


def caller_text(digits: str) -> str:
    """How keys appear in the call's transcript."""
    return f"DTMF {digits}"


class KeyCollector:
    """The digits of one entry, on the caller's clock (`now` in seconds): the first key, then each next one
    within its wait; '#' or the eighth digit ends the entry at once. Keys other than 0-9, '*' and '#' are
    ignored. Sans-I/O: the caller arms a timer for `deadline` and calls `expire` when it fires."""

    def __init__(self) -> None:
        self._digits = ""
        self._deadline: float | None = None

    @property
    def collecting(self) -> bool:
        return self._deadline is not None

    @property
    def deadline(self) -> float | None:
        """When the entry ends if no other key comes; None when no entry is under way."""
        return self._deadline

    def press(self, key: str, now: float) -> str | None:
        """A key; returns the digits when it ended the entry, else None (more may come)."""
        if key not in KEYS:
            return None
        first = self._deadline is None
        if key == END_KEY:
            return self._done()
        self._digits += key
        if len(self._digits) >= MAX_DIGITS:
            return self._done()
        self._deadline = now + (FIRST_WAIT_S if first else INTER_DIGIT_S)
        return None

    def expire(self, now: float) -> str | None:
        """The digits when the wait for the next key is over at `now`, else None."""
        if self._deadline is None or now < self._deadline:
            return None
        return self._done()

    def _done(self) -> str:
        digits, self._digits, self._deadline = self._digits, "", None
        return digits
