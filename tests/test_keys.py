"""Keys: one meaning in both modes (`key_reply`), and digits collected as the Lua script does (on an injected
clock: the first key, 2 s for the second, 1.5 s between later ones, '#' or the eighth digit ends it)."""

from __future__ import annotations

from secretary.calls.prompts import ENGLISH
from secretary.conversation.actions import Action
from secretary.conversation.keys import FIRST_WAIT_S, INTER_DIGIT_S, KeyCollector, key_reply
from tests.conftest import acme_config


def test_a_directory_extension_transfers_zero_is_the_fallback_anything_else_asks_again() -> None:
    config = acme_config()
    sales = key_reply(config, "1002", ENGLISH)
    assert sales.text == "Putting you through to Sales." and sales.brain == "dtmf"
    assert sales.action == Action.transfer("1002", "acme.example.com")
    operator = key_reply(config, "0", ENGLISH)
    assert operator.action == Action.transfer(config.fallback_destination, "acme.example.com")
    for digits in ("9", "", "1002*", "5000"):
        reply = key_reply(config, digits, ENGLISH)
        assert reply.text == ENGLISH.not_a_choice and reply.action == Action.continue_()


def test_the_entry_ends_after_the_wait_for_the_next_key() -> None:
    keys = KeyCollector()
    assert not keys.collecting and keys.press("1", now=10.0) is None
    assert keys.deadline == 10.0 + FIRST_WAIT_S
    assert keys.expire(11.9) is None
    assert keys.press("0", now=11.9) is None and keys.deadline == 11.9 + INTER_DIGIT_S
    assert keys.press("0", now=13.0) is None
    assert keys.press("2", now=14.4) is None
    assert keys.expire(15.8) is None
    assert keys.expire(15.9) == "1002"
    assert not keys.collecting and keys.deadline is None and keys.expire(99.0) is None


def test_hash_and_the_eighth_digit_end_it_at_once_and_other_keys_are_ignored() -> None:
    keys = KeyCollector()
    assert [keys.press(k, 0.0) for k in "10A02"] == [None] * 5
    assert keys.press("#", 0.1) == "1002"
    assert keys.press("#", 5.0) == ""  # '#' alone: an empty entry (the secretary asks again)
    pressed = [keys.press(k, 6.0) for k in "12345678"]
    assert pressed == [None] * 7 + ["12345678"] and not keys.collecting
