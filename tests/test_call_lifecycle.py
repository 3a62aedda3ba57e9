"""The call's life (`secretary.calls.lifecycle`) as a state machine: phases, limits, outcomes, turn records and
fixed lines, driven with given times and no I/O, for invented tenants in several languages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secretary.calls.lifecycle import CallLifecycle, Timings, conclude
from secretary.calls.models import CallPhase, CallState, Outcome
from secretary.calls.prompts import ENGLISH, PROMPTS, prompts_for
from secretary.conversation.actions import Action, ActionType
from secretary.tenants.config import SecretaryConfig

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def tenant(**overrides: Any) -> SecretaryConfig:
    """A bike repair shop (not the demo tenant)."""
    values: dict[str, Any] = {
        "domain_uuid": str(uuid.uuid4()),
        "domain_name": "spokes.example.net",
        "company": "Spokes & Sprockets",
        "greeting": "Spokes and Sprockets, Mira speaking.",
        "farewell": "Ride safe, bye!",
        "fallback_destination": "2000",
        "max_call_seconds": 120,
        "directory": [{"name": "Workshop", "extension": "2001", "aliases": ["repairs"]}],
    }
    return SecretaryConfig.model_validate(values | overrides)


def lifecycle(config: SecretaryConfig | None = None, **kw: Any) -> CallLifecycle:
    config = config or tenant()
    state = CallState(
        call_uuid=uuid.uuid4(),
        domain_uuid=config.domain_uuid,
        domain_name=config.domain_name,
        transport="test",
        started_at=T0,
    )
    return CallLifecycle(state, config, **kw)


def test_a_conversation_moves_through_its_phases_and_ends_transferred() -> None:
    call = lifecycle()
    assert call.greeting() == "Spokes and Sprockets, Mira speaking." and call.phase is CallPhase.GREETING
    assert [m.content for m in call.state.history] == ["Spokes and Sprockets, Mira speaking."]
    call.listening()
    call.caller_finished()
    assert call.phase is CallPhase.THINKING
    call.speaking()
    assert call.phase is CallPhase.SPEAKING
    first = call.turn(T0, "are you open on sunday", "No, we are closed on Sundays.", brain="front_desk",
                      timings=Timings(stt_ms=300, brain_ms=20, tts_ms=90, total_ms=410))  # fmt: skip
    assert (first.index, first.action.type, first.stt_ms, first.total_ms) == (1, ActionType.CONTINUE, 300, 410)
    call.listening()
    assert call.phase is CallPhase.LISTENING and call.state.outcome is None and call.answers_keys
    second = call.turn(T0, "the workshop please", "Putting you through to Workshop.",
                       action=Action.transfer("2001", "spokes.example.net"), brain="front_desk")  # fmt: skip
    assert second.index == 2 and call.phase is CallPhase.TRANSFERRING and call.over and not call.answers_keys
    assert (call.state.outcome, call.state.outcome_destination) == (Outcome.TRANSFER, "2001")
    call.listening()  # the announcement plays out: the call does not go back to conversation
    assert call.phase is CallPhase.TRANSFERRING
    assert call.ended() is Outcome.TRANSFER and call.phase is CallPhase.ENDED
    record = call.record(T0 + timedelta(seconds=42), "NORMAL_CLEARING")
    assert record.outcome is Outcome.TRANSFER and record.duration_ms == 42_000 and len(record.turns) == 2


def test_a_message_is_one_turn_then_thanks_and_goodbye() -> None:
    call = lifecycle()
    call.greeting()
    call.turn(T0, "can I leave a message", ENGLISH.leave_message, action=Action.take_message(), brain="llm")
    assert call.taking_message and not call.answers_keys
    call.caller_finished()
    call.speaking()
    assert call.phase is CallPhase.TAKING_MESSAGE  # the recording goes on until the message is in
    reply = call.message_taken()
    assert reply.text == "Thank you, I have taken your message. Ride safe, bye!"
    assert reply.action == Action.hangup() and reply.brain == "message"
    call.turn(T0, "call me back about the wheel", reply.text, action=reply.action, brain=reply.brain)
    assert call.phase is CallPhase.ENDING and call.state.outcome is Outcome.MESSAGE  # not overwritten by hangup
    assert call.ended("caller") is Outcome.MESSAGE  # hanging up after leaving a message: still a message


def test_silence_prompts_first_then_ends_after_the_domains_count() -> None:
    call = lifecycle(tenant(recording={"silent_turns": 3}))
    replies = [call.no_input(), call.no_input()]
    assert [r.text for r in replies] == [ENGLISH.still_there] * 2
    assert all(r.action == Action.continue_() for r in replies) and call.state.outcome is None
    call.caller_spoke()  # the count is of silences in a row
    assert call.no_input().action == Action.continue_()
    call.no_input()
    last = call.no_input()
    assert last.text == ENGLISH.nobody_there and last.action == Action.hangup()
    assert call.state.outcome is Outcome.CALLER_SILENT
    call.act(last.action)
    assert call.state.outcome is Outcome.CALLER_SILENT and call.ended() is Outcome.CALLER_SILENT


def test_the_time_limit_is_the_domains_capped_by_the_deployment() -> None:
    call = lifecycle(tenant(max_call_seconds=300))
    assert not call.time_up(T0 + timedelta(seconds=300)) and call.time_up(T0 + timedelta(seconds=301))
    capped = lifecycle(tenant(max_call_seconds=300), max_call_seconds=60)
    assert capped.time_up(T0 + timedelta(seconds=61))
    reply = capped.time_limit()
    assert reply.action == Action.transfer("2000", "spokes.example.net") and reply.text == ENGLISH.time_limit


def test_a_fault_apologises_and_goes_to_a_colleague() -> None:
    call = lifecycle()
    reply = call.fault()
    assert reply.text == ENGLISH.apology and reply.action == Action.transfer("2000", "spokes.example.net")
    call.act(reply.action)
    assert call.state.outcome is Outcome.TRANSFER and call.state.outcome_destination == "2000"


def test_keys_reset_the_silence_count_and_mean_the_same_as_in_every_mode() -> None:
    call = lifecycle()
    call.no_input()
    text, reply = call.keys("2001")
    assert text == "DTMF 2001" and reply.action == Action.transfer("2001", "spokes.example.net")
    assert call.state.silent_turns == 0
    assert call.keys("0")[1].action.destination == "2000"
    assert call.keys("77")[1].text == ENGLISH.not_a_choice


@pytest.mark.parametrize(
    ("ended_by", "before", "outcome"),
    [
        ("fallback", None, Outcome.FALLBACK),
        ("caller", Outcome.TRANSFER, Outcome.CALLER_HANGUP),  # left during the announcement
        ("caller", Outcome.MESSAGE, Outcome.MESSAGE),
        ("hangup", None, Outcome.HANGUP),
        ("transfer", Outcome.TRANSFER, Outcome.TRANSFER),
        (None, None, Outcome.CALLER_HANGUP),  # the stream closed: nothing else was decided
    ],
)
def test_how_the_call_ended_decides_the_outcome(ended_by: Any, before: Outcome | None, outcome: Outcome) -> None:
    call = lifecycle()
    call.state.outcome = before
    assert conclude(call.state, ended_by, "2000") is outcome


def test_a_resumed_call_is_not_greeted_twice() -> None:
    call = lifecycle()
    assert call.greeting(resumed=True) == ENGLISH.resumed
    assert call.greeting(resumed=True) == ENGLISH.resumed and len(call.state.history) == 1


def test_late_reports_after_the_end_change_nothing() -> None:
    call = lifecycle()
    call.ended()
    call.caller_finished()
    call.act(Action.take_message())
    assert call.phase is CallPhase.ENDED


def test_a_revised_turn_moves_the_call_by_its_new_action() -> None:
    call = lifecycle()
    record = call.turn(T0, "I need a repair", "Sure.", brain="gemini_live")
    call.revise(record, secretary_text="Sure. Putting you through.", action=Action.transfer("2001", "x"))
    assert record.secretary_text == "Sure. Putting you through." and call.state.outcome is Outcome.TRANSFER


def test_prompts_follow_the_domains_language() -> None:
    assert prompts_for("de-AT") is PROMPTS["de"] and prompts_for("fr") is PROMPTS["fr"]
    assert prompts_for("pt-BR") is ENGLISH  # no set of its own: English
    german = lifecycle(tenant(language="de", farewell="Tschüss!"))
    assert german.no_input().text == "Sind Sie noch da?"
    assert german.message_taken().text == "Vielen Dank, ich habe Ihre Nachricht aufgenommen. Tschüss!"
    assert german.keys("2001")[1].text == "Ich verbinde Sie mit Workshop."
    for prompts in PROMPTS.values():  # every set is complete and its templates take a name
        assert "{name}" in prompts.putting_through and "{name}" in prompts.not_in_directory
        assert all(isinstance(v, str) and v for v in (prompts.apology, prompts.resumed, prompts.cut_off("")))


def test_an_earlier_versions_state_still_loads() -> None:
    state = lifecycle().state.model_dump(mode="json") | {"phase": "talking", "outcome": "message"}
    loaded = CallState.model_validate(state)
    assert loaded.phase is CallPhase.LISTENING and loaded.outcome is Outcome.MESSAGE


def test_a_repeated_start_keeps_the_call_where_it_is() -> None:
    call = lifecycle()
    call.greeting()
    call.turn(T0, "I'd like to leave a message", ENGLISH.leave_message, action=Action.take_message())
    assert call.greeting() == "Spokes and Sprockets, Mira speaking." and call.taking_message
    assert len(call.state.history) == 1  # greeted once
