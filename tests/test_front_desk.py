"""The rule-based front desk: the offline default and the last fallback, so its rules must hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from secretary.conversation.actions import ActionType
from secretary.conversation.brain import BrainRequest, KnowledgeChunk
from secretary.conversation.conversation import Conversation, Reply, Sentence
from secretary.conversation.front_desk import FrontDesk
from tests.conftest import acme_config

# A Tuesday at 15:00 in New York (open) and a Sunday (closed).
OPEN = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
CLOSED = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)


def conversation(now: datetime = OPEN) -> Conversation:
    return Conversation(acme_config(), FrontDesk(), clock=lambda: now)


async def reply(text: str, now: datetime = OPEN) -> Reply:
    return await conversation(now).respond(text)


@pytest.mark.parametrize(
    ("heard", "extension"),
    [
        ("Please put me through to sales.", "1002"),
        ("Place put me through the sails.", "1002"),  # Whisper's spelling: same sound
        ("Can I talk to Dr. Miller?", "1004"),
        ("I'd like to speak with Doc Miller please", "1004"),
        ("billing", "1003"),
        ("Transfer me to accounts.", "1003"),
        ("Connect me to technical support", "3000"),
        ("extension 1003 please", "1003"),
        ("Can I speak to a real person?", "1001"),
        ("operator", "1001"),
    ],
)
async def test_transfers_by_name_alias_sound_or_extension(heard: str, extension: str) -> None:
    result = await reply(heard)
    assert result.action.type is ActionType.TRANSFER
    assert (result.action.destination, result.action.context) == (extension, "acme.example.com")


async def test_opening_hours_and_whether_open_now() -> None:
    open_reply = await reply("What are your opening hours?", OPEN)
    assert "Monday to Friday, 9 AM to 5 PM" in open_reply.text and "open right now" in open_reply.text
    closed_reply = await reply("When are you open?", CLOSED)
    assert "closed at the moment" in closed_reply.text
    assert open_reply.action.type is ActionType.CONTINUE


@pytest.mark.parametrize("heard", ["Goodbye.", "Thanks, bye!", "That's all, have a nice day."])
async def test_goodbye_hangs_up_with_the_farewell(heard: str) -> None:
    result = await reply(heard)
    assert result.action.type is ActionType.HANGUP and result.text == "Thank you for calling Acme. Goodbye!"


@pytest.mark.parametrize(
    ("heard", "asked"),
    [
        ("Can I leave a message?", "Of course. Who is the message for?"),
        ("I want to leave a message for Dr. Miller", "May I have your name, please?"),
        ("voicemail", "Of course. Who is the message for?"),
    ],
)
async def test_message_requests_ask_for_the_details_first(heard: str, asked: str) -> None:
    result = await reply(heard)
    assert result.action.type is ActionType.CONTINUE and result.text == asked


async def test_faq_by_question_or_keyword() -> None:
    assert "Main Street" in (await reply("Where are you located?")).text
    assert "free parking" in (await reply("is there somewhere to park the car")).text


async def test_transfer_without_a_name_asks_who() -> None:
    result = await reply("Can you transfer me?")
    assert result.action.type is ActionType.CONTINUE and "Sales, Billing, Dr. Miller or Support" in result.text


async def test_two_misunderstandings_in_a_row_offer_a_person_who_is_then_reached() -> None:
    talk = conversation()
    first = await talk.respond("The purple elephant sings at dawn.")
    assert first.action.type is ActionType.CONTINUE and not first.understood
    second = await talk.respond("Quantum marmalade.")
    assert second.action.type is ActionType.CONTINUE and "reception" in second.text
    third = await talk.respond("Yes, reception please.")
    assert third.action.type is ActionType.TRANSFER and third.action.destination == "1001"


async def test_silence_is_asked_again() -> None:
    result = await reply("")
    assert result.action.type is ActionType.CONTINUE and "didn't catch" in result.text


def test_knowledge_answers_when_relevant_and_admits_ignorance_otherwise() -> None:
    config = acme_config()
    good = [KnowledgeChunk("The warranty lasts two years. It covers parts and labour. Call us.", "warranty.md", 0.8)]
    weak = [KnowledgeChunk("Our founder likes cycling.", "about.md", 0.1)]

    def answer(knowledge: list[KnowledgeChunk] | None) -> str:
        request = BrainRequest(
            config=config, history=(), caller_text="how long is the warranty", now=OPEN, knowledge=knowledge
        )
        return FrontDesk().decide(request)[0]

    assert answer(good) == "The warranty lasts two years."
    assert "don't have that information" in answer(weak)
    assert "don't have that information" in answer([])
    assert "didn't understand" in answer(None)  # no knowledge base at all: offer what it can do


async def test_turn_limit_transfers_to_the_fallback() -> None:
    config = acme_config().model_copy(update={"max_turns": 2})
    talk = Conversation(config, FrontDesk(), clock=lambda: OPEN)
    await talk.respond("hello")
    await talk.respond("What are your opening hours?")
    third = await talk.respond("And where are you?")
    assert third.action.type is ActionType.TRANSFER and third.action.destination == "1001"


async def test_streaming_yields_sentences_then_the_reply() -> None:
    events = [e async for e in conversation().stream("What are your opening hours?")]
    sentences = [e.text for e in events if isinstance(e, Sentence)]
    assert sentences[0].startswith("We are open Monday to Friday") and len(sentences) == 2
    talk = conversation()
    await talk.respond("hello")
    assert [m.role for m in talk.history] == ["user", "assistant"]
