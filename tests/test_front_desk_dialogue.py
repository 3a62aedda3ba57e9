"""The front desk's dialogue, on three invented businesses (a clinic, a law firm, a garage): names heard a
little wrong (one vowel or consonant off, titles said or not), confirmation answered yes, no or with another
name, bare names after "who would you like to speak to?", nobody by that name, the two-failure policy, and a
message's details (for whom, from whom, a callback number) read back before the recording."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from secretary.calls.lifecycle import CallLifecycle
from secretary.calls.models import CallState
from secretary.conversation.actions import ActionType
from secretary.conversation.conversation import Conversation, Reply
from secretary.conversation.desk_state import Awaiting
from secretary.conversation.front_desk import FrontDesk, caller_name_in, say_number, spoken_digits
from secretary.conversation.names import match_name, normalise, stt_hints
from secretary.tenants.config import BusinessHours, SecretaryConfig

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def _tenant(domain: str, company: str, directory: list[dict[str, object]], fallback: str) -> SecretaryConfig:
    return SecretaryConfig.model_validate(
        {
            "domain_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, domain)),
            "domain_name": domain,
            "company": company,
            "farewell": f"Thank you for calling {company}. Goodbye!",
            "fallback_destination": fallback,
            "directory": directory,
        }
    )


CLINIC = _tenant(
    "riverside-clinic.example",
    "Riverside Clinic",
    [
        {"name": "Dr. Okonkwo", "extension": "201", "aliases": ["Amara Okonkwo"], "description": "Cardiology"},
        {"name": "Dr. Brennan", "extension": "202", "description": "Paediatrics"},
        {"name": "Nurse Patel", "extension": "203", "aliases": ["Priya Patel"]},
        {"name": "Appointments", "extension": "200", "aliases": ["bookings"]},
    ],
    "200",
)
LAW_FIRM = _tenant(
    "hartmann-kowalski.example",
    "Hartmann and Kowalski",
    [
        {"name": "Ms. Kowalski", "extension": "301", "aliases": ["Joanna Kowalski"], "description": "Family law"},
        {"name": "Mr. Hartmann", "extension": "302", "description": "Contracts"},
        {"name": "Mr. Lindqvist", "extension": "303", "aliases": ["Erik Lindqvist"]},
        {"name": "Reception", "extension": "300"},
    ],
    "300",
)
GARAGE = _tenant(
    "nakamura-motors.example",
    "Nakamura Motors",
    [
        {"name": "Workshop", "extension": "401", "aliases": ["service desk"], "description": "Repairs and servicing"},
        {"name": "Kenji Nakamura", "extension": "402", "aliases": ["Mr. Nakamura"]},
        {"name": "Parts", "extension": "403", "aliases": ["spare parts"]},
    ],
    "401",
)


def talk(config: SecretaryConfig, caller_number: str = "", caller_name: str = "") -> Conversation:
    return Conversation(
        config, FrontDesk(), clock=lambda: NOW, caller_id_number=caller_number, caller_id_name=caller_name
    )


def transferred_to(reply: Reply) -> str | None:
    return reply.action.destination if reply.action.type is ActionType.TRANSFER else None


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "heard", "extension"),
    [
        (CLINIC, "Can I speak to Doctor Okonkwo please?", "201"),
        (CLINIC, "Can I speak to Doctor Okonkwu please?", "201"),  # a vowel off, the same sound
        (GARAGE, "Mr. Nakamora please", "402"),
        (CLINIC, "Put me through to Doc Brennan.", "202"),  # "Doc" for "Dr."
        (CLINIC, "Brennan please", "202"),  # no title at all
        (CLINIC, "I'd like to talk to Priya Patel", "203"),
        (LAW_FIRM, "Mrs Kowalski please", "301"),  # another title than the directory's
        (LAW_FIRM, "Connect me with Mister Lindquist.", "303"),  # Whisper's spelling
        (LAW_FIRM, "Could I speak to Mr Hartman?", "302"),
        (GARAGE, "Can I talk to Mr. Nakamura?", "402"),
        (GARAGE, "the service desk please", "401"),
    ],
)
async def test_names_with_titles_and_spellings_put_the_caller_through(
    config: SecretaryConfig, heard: str, extension: str
) -> None:
    assert transferred_to(await talk(config).respond(heard)) == extension


@pytest.mark.parametrize(
    ("config", "heard", "candidate", "said"),
    [
        (CLINIC, "Can I speak to Doctor Obonkwo?", "Dr. Okonkwo", "Dr. Okonkwo, Cardiology"),  # a consonant off
        (LAW_FIRM, "Put me through to Ms. Kovalski.", "Ms. Kowalski", "Ms. Kowalski, Family law"),
        (GARAGE, "I need to talk to Mr. Makamura", "Kenji Nakamura", "Kenji Nakamura"),
    ],
)
async def test_a_name_heard_a_little_wrong_is_confirmed_then_put_through_on_yes(
    config: SecretaryConfig, heard: str, candidate: str, said: str
) -> None:
    desk = talk(config)
    asked = await desk.respond(heard)
    assert asked.action.type is ActionType.CONTINUE and asked.text == f"Just to check: {said}. Is that right?"
    assert desk.desk.awaiting is Awaiting.CONFIRM_NAME and desk.desk.candidate == candidate
    target = config.target_by_name(candidate)
    assert target is not None
    assert transferred_to(await desk.respond("Yes, please.")) == target.extension


async def test_no_after_a_confirmation_asks_again_and_a_bare_name_then_transfers() -> None:
    desk = talk(CLINIC)
    await desk.respond("Can I speak to Doctor Obonkwo?")
    again = await desk.respond("No.")
    assert (
        again.text == "Sorry about that. Who would you like to speak to?" and again.action.type is ActionType.CONTINUE
    )
    assert transferred_to(await desk.respond("Nurse Patel.")) == "203"


@pytest.mark.parametrize("correction", ["No, Doctor Brennan.", "Doctor Brennan.", "Yes, Doctor Brennan."])
async def test_a_correction_after_a_confirmation_goes_to_the_name_given(correction: str) -> None:
    desk = talk(CLINIC)
    await desk.respond("Put me through to Doctor Obonkwo.")
    assert transferred_to(await desk.respond(correction)) == "202"


async def test_a_bare_name_after_who_would_you_like_to_speak_to_transfers_whatever_its_length() -> None:
    desk = talk(LAW_FIRM)
    asked = await desk.respond("Can you transfer me?")
    assert asked.text.startswith("Who would you like to speak to?") and desk.desk.awaiting is Awaiting.NAME
    # eight words, no transfer verb: after the question they are an answer, not a new request
    assert transferred_to(await desk.respond("oh it would be Erik Lindqvist I think")) == "303"


@pytest.mark.parametrize(
    ("config", "heard"),
    [
        (CLINIC, "Can I speak to Doctor Fitzgerald?"),
        (LAW_FIRM, "Put me through to John Smith please."),
        (GARAGE, "I'd like to talk to Giovanni."),
    ],
)
async def test_nobody_by_that_name_offers_a_message_or_reception_without_reading_the_directory(
    config: SecretaryConfig, heard: str
) -> None:
    desk = talk(config)
    result = await desk.respond(heard)
    assert result.text.startswith("I'm sorry, there's no one by that name here.")
    assert "message" in result.text and "reception" in result.text
    assert not any(t.name in result.text for t in config.directory)
    assert result.action.type is ActionType.CONTINUE and desk.desk.awaiting is Awaiting.OFFER
    assert transferred_to(await desk.respond("Reception, please.")) == config.fallback_destination


async def test_nobody_by_that_name_then_a_message() -> None:
    desk = talk(GARAGE, caller_number="+44 20 7946 0321", caller_name="Sam Reyes")
    await desk.respond("Put me through to Giovanni.")
    asked = await desk.respond("I'll leave a message.")
    assert asked.text == "Of course. Who is the message for?"


async def test_after_who_would_you_like_an_unknown_name_is_nobody_by_that_name() -> None:
    desk = talk(CLINIC)
    await desk.respond("I want to speak to someone.")  # an operator request goes through at once …
    desk = talk(CLINIC)
    await desk.respond("Could you connect me?")
    result = await desk.respond("Professor Abernathy")
    assert result.text.startswith("I'm sorry, there's no one by that name here.")


def test_match_scores_spelling_and_sound_titles_aside() -> None:
    sure = match_name(LAW_FIRM, normalise("Mister Hartmann"))
    assert sure is not None and sure.sure and sure.target.extension == "302"
    near = match_name(LAW_FIRM, normalise("Kovalski"))
    assert near is not None and not near.sure and near.target.extension == "301"
    assert match_name(LAW_FIRM, normalise("Doctor Fitzgerald")) is None
    assert match_name(GARAGE, normalise("I would like a quote for new tyres")) is None


def test_stt_hints_are_the_domains_own_names() -> None:
    assert stt_hints(CLINIC) == ["Dr. Okonkwo", "Amara Okonkwo", "Dr. Brennan", "Nurse Patel", "Priya Patel",
                                 "Appointments", "bookings"]  # fmt: skip
    assert not set(stt_hints(CLINIC)) & set(stt_hints(GARAGE))


# -- repeated failure ----------------------------------------------------------------------------------------


async def test_two_misunderstandings_offer_a_message_or_reception_and_a_third_goes_to_reception() -> None:
    desk = talk(GARAGE)
    first = await desk.respond("The purple elephant sings at dawn.")
    assert not first.understood and "didn't understand" in first.text
    second = await desk.respond("Quantum marmalade.")
    assert second.action.type is ActionType.CONTINUE and not second.understood
    assert "leave a message" in second.text and "reception" in second.text
    third = await desk.respond("Banana telescope.")
    assert transferred_to(third) == GARAGE.fallback_destination


async def test_two_silences_offer_a_message_or_reception_and_the_offer_is_taken() -> None:
    desk = talk(CLINIC)
    assert "didn't catch" in (await desk.respond("")).text
    offer = await desk.respond("")
    assert "leave a message" in offer.text and desk.desk.awaiting is Awaiting.OFFER
    assert (await desk.respond("A message please.")).text == "Of course. Who is the message for?"


async def test_declining_the_offer_goes_back_to_helping() -> None:
    desk = talk(LAW_FIRM)
    await desk.respond("Put me through to John Smith.")
    result = await desk.respond("No thanks.")
    assert result.text == "All right. How else can I help you?" and desk.desk.awaiting is Awaiting.NOTHING


# -- messages ------------------------------------------------------------------------------------------------


async def test_a_message_asks_for_whom_the_callers_name_and_a_callback_then_reads_them_back() -> None:
    desk = talk(LAW_FIRM)  # no caller id: everything is asked
    assert (await desk.respond("Can I leave a message?")).text == "Of course. Who is the message for?"
    assert (await desk.respond("Ms. Kowalski")).text == "May I have your name, please?"
    assert (await desk.respond("It's Robin Banks.")).text == "What number can we call you back on?"
    read_back = await desk.respond("five five five, oh one nine nine")
    assert read_back.text == (
        "So that's a message for Ms. Kowalski from Robin Banks, and we can call you back on 5 5 5, 0 1 9 9. "
        "Is that right?"
    )
    recorded = await desk.respond("Yes, that's right.")
    assert recorded.action.type is ActionType.TAKE_MESSAGE and "after the tone" in recorded.text
    details = desk.desk.message
    assert details is not None
    assert (details.recipient, details.caller_name, details.callback_number) == (
        "Ms. Kowalski",
        "Robin Banks",
        "5550199",
    )


async def test_the_callback_is_offered_from_caller_id_and_corrected_by_voice() -> None:
    desk = talk(CLINIC, caller_number="+1 (555) 010-4477", caller_name="Jordan Lee")
    read_back = await desk.respond("I'd like to leave a message for Doctor Brennan.")
    assert read_back.text == (
        "So that's a message for Dr. Brennan from Jordan Lee, and we can call you back on "
        "1 5 5, 5 0 1, 0 4 4, 7 7. Is that right?"
    )
    corrected = await desk.respond("No, call me on 555 867 5309.")
    assert "5 5 5, 8 6 7, 5 3 0 9. Is that right?" in corrected.text
    renamed = await desk.respond("Sorry, my name is Jordan Leigh.")
    assert "from Jordan Leigh," in renamed.text
    assert (await desk.respond("Yes.")).action.type is ActionType.TAKE_MESSAGE
    details = desk.desk.message
    assert details is not None and (details.callback_number, details.caller_name) == ("5558675309", "Jordan Leigh")


async def test_a_message_for_someone_not_in_the_directory_is_a_general_message() -> None:
    desk = talk(GARAGE, caller_number="0161 496 0000", caller_name="Alex Doe")
    await desk.respond("Can I leave a message?")
    result = await desk.respond("For Giovanni.")
    assert result.text.startswith("There's no one by that name here, so I'll take a general message.")
    assert "a message for Nakamura Motors from Alex Doe" in result.text


async def test_a_message_recipient_heard_a_little_wrong_is_confirmed() -> None:
    desk = talk(LAW_FIRM, caller_number="5550100", caller_name="Kim Ortiz")
    await desk.respond("I want to leave a message.")
    asked = await desk.respond("For Miss Kovalski.")
    assert asked.text == "Is the message for Ms. Kowalski, Family law?"
    read_back = await desk.respond("Yes.")
    assert read_back.text.startswith("So that's a message for Ms. Kowalski from Kim Ortiz")


async def test_no_to_the_read_back_asks_what_to_change() -> None:
    desk = talk(CLINIC, caller_number="5550100", caller_name="Kim Ortiz")
    await desk.respond("Take a message for appointments please.")
    assert (await desk.respond("No.")).text.startswith("Sorry. What should I change")
    assert (await desk.respond("The number.")).text == "What number can we call you back on?"
    assert "2 0 2, 5 5 5, 0 1 4 3" in (await desk.respond("202 555 0143")).text


def test_digits_names_and_numbers_as_spoken() -> None:
    assert spoken_digits(normalise("five five five, oh one nine nine")) == "5550199"
    assert spoken_digits(normalise("555-0199")) == "5550199"
    assert spoken_digits(normalise("double seven three")) == "773"
    assert say_number("5550199") == "5 5 5, 0 1 9 9"
    assert caller_name_in("My name is Priya Shah, thanks.") == "Priya Shah"


# -- the state between v1 turns ------------------------------------------------------------------------------


async def test_the_dialogue_state_survives_between_turns_in_the_call_state() -> None:
    """A v1 turn is one HTTP request: the call's state goes to Redis as JSON and the next turn may land on
    another process. What the front desk asked must come back with it."""
    state = CallState(
        call_uuid=uuid.uuid4(), domain_uuid=CLINIC.domain_uuid, domain_name=CLINIC.domain_name, transport="turn"
    )

    async def turn(text: str) -> Reply:
        nonlocal state
        call = CallLifecycle(CallState.model_validate_json(state.model_dump_json()), CLINIC)
        reply = await call.conversation(FrontDesk(), None).respond(text)
        call.turn(NOW, text, reply.text, action=reply.action, brain=reply.brain)
        state = call.state
        return reply

    await turn("Can I speak to Doctor Obonkwo?")
    assert state.desk.awaiting is Awaiting.CONFIRM_NAME and state.desk.candidate == "Dr. Okonkwo"
    assert transferred_to(await turn("Yes.")) == "201"


async def test_a_sentence_that_merely_contains_a_name_corrects_nothing_in_the_read_back() -> None:
    desk = talk(GARAGE, caller_number="5550100", caller_name="Kim Ortiz")
    await desk.respond("I'd like to leave a message for the workshop.")
    again = await desk.respond("Please call me back about the spare parts I ordered last week.")
    assert again.text.startswith("So that's a message for Workshop from Kim Ortiz") and not again.understood
    assert desk.desk.message is not None and desk.desk.message.recipient == "Workshop"


async def test_the_business_name_is_no_request_for_the_person_it_is_named_after() -> None:
    result = await talk(GARAGE).respond("Hello, is this Nakamura Motors?")
    assert result.action.type is ActionType.CONTINUE and result.text == "Hello! How can I help you today?"


async def test_a_detail_not_understood_twice_is_left_out_of_the_message() -> None:
    desk = talk(CLINIC)  # no caller id
    await desk.respond("Leave a message for appointments.")
    assert (await desk.respond("um")).text == "Sorry, I didn't catch your name. Could you say it again?"
    assert (await desk.respond("uh")).text == "What number can we call you back on?"
    read_back = await desk.respond("oh two oh seven nine four six oh three two one")
    assert read_back.text == (
        "So that's a message for Appointments, and we can call you back on 0 2 0, 7 9 4, 6 0 3, 2 1. Is that right?"
    )
    assert (await desk.respond("Yes.")).action.type is ActionType.TAKE_MESSAGE
    assert desk.desk.message is not None and desk.desk.message.caller_name == ""


# -- hours, answered as asked --------------------------------------------------------------------------------

# A Tuesday 15:00 in Manchester (the garage is open 8:00-17:30 on weekdays, 9:00-12:00 on Saturdays).
TUESDAY_AFTERNOON = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SATURDAY_EVENING = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)
WORKSHOP_HOURS = GARAGE.model_copy(
    update={
        "business_hours": BusinessHours.model_validate(
            {
                "timezone": "Europe/London",
                "weekly": {**{d: ["08:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": ["09:00-12:00"]},
            }
        )
    }
)


@pytest.mark.parametrize(
    ("now", "heard", "answer"),
    [
        (TUESDAY_AFTERNOON, "Are you open right now?", "Yes, we're open until 5:30 PM today."),
        (SATURDAY_EVENING, "Are you still open?", "No, we're closed at the moment. We open again on Monday at 8 AM."),
        (TUESDAY_AFTERNOON, "When do you close on Saturday?", "On Saturday we're open 9 AM to 12 PM."),
        (TUESDAY_AFTERNOON, "What are your hours tomorrow?", "Tomorrow we're open 8 AM to 5:30 PM."),
        (SATURDAY_EVENING, "Are you open on Sunday?", "On Sunday we're closed."),
    ],
)
async def test_hours_questions_get_the_answer_they_asked_for(now: datetime, heard: str, answer: str) -> None:
    desk = Conversation(WORKSHOP_HOURS, FrontDesk(), clock=lambda: now)
    assert (await desk.respond(heard)).text == answer


async def test_a_general_hours_question_gets_the_week() -> None:
    desk = Conversation(WORKSHOP_HOURS, FrontDesk(), clock=lambda: TUESDAY_AFTERNOON)
    text = (await desk.respond("What are your opening hours?")).text
    assert text == "We are open Monday to Friday, 8 AM to 5:30 PM; Saturday, 9 AM to 12 PM. We are open right now."


async def test_keys_give_the_callback_number_while_one_is_asked() -> None:
    state = CallState(
        call_uuid=uuid.uuid4(), domain_uuid=LAW_FIRM.domain_uuid, domain_name=LAW_FIRM.domain_name, transport="turn"
    )
    call = CallLifecycle(state, LAW_FIRM)
    desk = call.conversation(FrontDesk(), None)
    for text in ("Can I leave a message for Mr. Hartmann?", "Robin Banks."):
        reply = await desk.respond(text)
        call.turn(NOW, text, reply.text, action=reply.action, brain=reply.brain)
    assert reply.text == "What number can we call you back on?"
    keys, keyed = call.keys("5550123")
    assert keys == "DTMF 5550123" and keyed.action.type is ActionType.CONTINUE and keyed.personal
    assert keyed.text == (
        "So that's a message for Mr. Hartmann from Robin Banks, and we can call you back on 5 5 5, 0 1 2 3. "
        "Is that right?"
    )
    assert (await desk.respond("Yes.")).action.type is ActionType.TAKE_MESSAGE
    assert desk.desk.message is not None and desk.desk.message.callback_number == "5550123"
    _, operator = CallLifecycle(CallState.model_validate_json(state.model_dump_json()), LAW_FIRM).keys("0")
    assert transferred_to(operator) == "300"  # too short for a number: "0" means what it always does


async def test_the_read_back_is_never_cached_as_audio_and_other_replies_are() -> None:
    desk = talk(GARAGE, caller_number="5550100", caller_name="Kim Ortiz")
    asked = await desk.respond("Can I leave a message?")
    assert not asked.personal
    assert (await desk.respond("Parts.")).personal  # the read-back: the caller's name and number


# -- urgent callers, and a department by what it does ---------------------------------------------------------

VETS = _tenant(
    "willow-vets.example",
    "Willow Veterinary Practice",
    [
        {"name": "Dr. Hussain", "extension": "501", "description": "Small animals"},
        {"name": "Out of hours vet", "extension": "599", "aliases": ["emergency vet"]},
        {"name": "Pharmacy", "extension": "502", "description": "Repeat medicines, flea and worming treatments"},
    ],
    "500",
)
PLUMBER = _tenant(
    "brightwater-plumbing.example",
    "Brightwater Plumbing",
    [
        {"name": "Quotes", "extension": "601", "description": "New bathrooms and boiler installations"},
        {"name": "Callouts", "extension": "602", "description": "Leaks, burst pipes and blocked drains"},
    ],
    "600",
)


@pytest.mark.parametrize(
    ("config", "heard", "extension"),
    [
        (VETS, "It's an emergency, my dog has been hit by a car.", "599"),  # the urgent line of the directory
        (VETS, "I need someone urgently, my cat can't breathe.", "599"),
        (PLUMBER, "It's urgent, water is coming through the ceiling.", "600"),  # no urgent line: a person
    ],
)
async def test_an_urgent_caller_is_put_through_at_once(config: SecretaryConfig, heard: str, extension: str) -> None:
    reply = await talk(config).respond(heard)
    assert transferred_to(reply) == extension and "urgent" in reply.text


@pytest.mark.parametrize(
    ("config", "heard", "extension"),
    [
        (PLUMBER, "I've got a burst pipe under the sink.", "602"),
        (PLUMBER, "We want a quote for a new boiler installation.", "601"),
        (VETS, "I need more flea treatment for my cat.", "502"),
    ],
)
async def test_a_need_reaches_the_department_that_serves_it(
    config: SecretaryConfig, heard: str, extension: str
) -> None:
    assert transferred_to(await talk(config).respond(heard)) == extension


async def test_a_need_no_department_or_several_serve_is_not_a_transfer() -> None:
    assert transferred_to(await talk(PLUMBER).respond("Do you sell garden furniture?")) is None
    assert transferred_to(await talk(VETS).respond("What treatments do you have?")) is None  # a question
    assert transferred_to(await talk(PLUMBER).respond("I need a new boiler and a blocked drain seen to.")) is None


async def test_is_it_open_now_is_an_hours_question_even_naming_reception() -> None:
    hours = BusinessHours.model_validate(
        {
            "timezone": "UTC",
            "weekly": {day: ["00:00-23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        }
    )
    hotel = LAW_FIRM.model_copy(update={"business_hours": hours})
    reply = await talk(hotel).respond("Is reception open right now?")
    assert reply.action.type is ActionType.CONTINUE and "open" in reply.text.lower()


async def test_a_real_person_is_a_person_not_the_entry_the_words_sound_a_little_like() -> None:
    facilities = _tenant(
        "shinyco.example",
        "ShinyCo Facilities",
        [{"name": "Hygienist", "extension": "901", "aliases": ["cleaning"]}, {"name": "Windows", "extension": "902"}],
        "900",
    )
    reply = await talk(facilities).respond("Can I talk to a real person, please?")
    assert transferred_to(reply) == "900"
