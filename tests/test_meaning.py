"""Meaning by the real MiniLM: paraphrases the front desk's rules don't know reach their intent and their FAQ
line; unrelated questions reach none (a wrong guess is worse than "I didn't understand"). The phrases here are
not the model's examples, and the tenants are invented."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from secretary.conversation.actions import ActionType
from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.conversation.meaning import MeaningModel, Meant
from secretary.knowledge.embedders import MiniLmEmbedder
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday afternoon
FLORIST = SecretaryConfig.model_validate(
    {
        "domain_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, "petal-and-stem.example")),
        "domain_name": "petal-and-stem.example",
        "company": "Petal and Stem",
        "fallback_destination": "700",
        "business_hours": {"timezone": "UTC", "weekly": {"wed": ["09:00-17:00"], "sat": ["10:00-14:00"]}},
        "directory": [{"name": "Orders", "extension": "701"}, {"name": "Ruth Amsel", "extension": "702"}],
        "faq": [
            {"question": "Where is the shop?", "answer": "We are at 9 Orchard Row, beside the bakery."},
            {"question": "Do you deliver?", "answer": "Yes, we deliver within ten miles for five pounds."},
        ],
    }
)


@pytest_asyncio.fixture
async def meaning(models: LocalModels) -> AsyncIterator[MeaningModel]:
    pool = CpuPool(1)
    yield MeaningModel(MiniLmEmbedder(models, pool).embed)


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("are you around on saturdays", Meant.HOURS),
        ("could you let her know that Sam rang", Meant.MESSAGE),
        ("is there a person I can talk to", Meant.HUMAN),
        ("what's the best way to reach you by car", Meant.ADDRESS),
        ("I'd like someone to call me back", Meant.MESSAGE),
        ("do you sell bicycles", None),
        ("how much is a haircut", None),
        ("what's the weather like", None),
        ("my order number is four five six", None),
    ],
)
async def test_a_paraphrase_reaches_its_intent_and_nothing_else_does(
    meaning: MeaningModel, said: str, intent: Meant | None
) -> None:
    understood = await meaning.understand(said, FLORIST)
    assert understood is not None and understood.intent is intent


@pytest.mark.parametrize(
    ("said", "faq"),
    [
        ("how do I find your store", 0),
        ("do you do home delivery", 1),
        ("can you send the flowers to my address", None),  # too far for MiniLM: not understood, not guessed
        ("do you have roses in stock", None),
        ("what time do you open", None),
    ],
)
async def test_faq_lines_by_meaning(meaning: MeaningModel, said: str, faq: int | None) -> None:
    understood = await meaning.understand(said, FLORIST)
    assert understood is not None and understood.faq == faq


async def test_another_language_keeps_the_rules(meaning: MeaningModel) -> None:
    german = FLORIST.model_copy(update={"language": "de"})
    assert await meaning.understand("Wann haben Sie geöffnet?", german) is None


async def test_the_front_desk_answers_what_was_meant(meaning: MeaningModel) -> None:
    def talk() -> Conversation:
        return Conversation(FLORIST, FrontDesk(), clock=lambda: NOW, meaning=meaning)

    saturday = await talk().respond("Are you around on Saturdays?")
    assert "10 AM" in saturday.text and "2 PM" in saturday.text, saturday.text
    delivery = await talk().respond("Do you do home delivery?")
    assert "ten miles" in delivery.text
    person = await talk().respond("Is there a person I can talk to?")
    assert person.action.type is ActionType.TRANSFER and person.action.destination == "700"
    unknown = await talk().respond("Do you have roses in stock?")
    assert unknown.action.type is ActionType.CONTINUE and "ten miles" not in unknown.text
