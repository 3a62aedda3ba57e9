"""The front desk and knowledge: it reads out the best passage when it is close enough to the question, says
it doesn't know when the domain has documents but none fits, and lets the domain's own rules (transfers,
messages, opening hours, FAQ) win over documents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from secretary.conversation.brain import BrainRequest, Intent, KnowledgeChunk
from secretary.conversation.front_desk import KNOWLEDGE_SCORE_MIN, FrontDesk
from tests.conftest import acme_config

CLOSE = KNOWLEDGE_SCORE_MIN + 0.3
FAR = KNOWLEDGE_SCORE_MIN - 0.1
WARRANTY = KnowledgeChunk(
    text="Every anvil carries a ten-year warranty against cracks. Rocket skates have a two-year warranty.",
    source="guide.md: Warranty",
    score=CLOSE,
    answer="Rocket skates have a two-year warranty.",
)


def decide(text: str, knowledge: Sequence[KnowledgeChunk] | None) -> tuple[str, Intent | None, bool]:
    request = BrainRequest(
        config=acme_config(),
        history=(),
        caller_text=text,
        now=datetime(2025, 1, 7, 15, 0, tzinfo=UTC),  # a Tuesday, 10:00 in New York: open
        knowledge=knowledge,
    )
    reply, decision, understood = FrontDesk().decide(request)
    return reply, decision.intent if decision else None, understood


def test_a_close_passage_is_read_out_from_its_answer_sentence() -> None:
    assert decide("What is the warranty on rocket skates?", [WARRANTY]) == (
        "Rocket skates have a two-year warranty.",
        None,
        True,
    )


def test_without_a_picked_sentence_the_passage_opening_is_read() -> None:
    text = "The first sentence opens. The second one follows. The third comes last."
    chunk = KnowledgeChunk(text=text, source="x.txt", score=CLOSE)
    assert (
        decide("tell me about the sentences please", [chunk])[0] == "The first sentence opens. The second one follows."
    )


def test_the_closest_passage_wins() -> None:
    other = KnowledgeChunk(text="Parking costs nothing on weekends.", source="y.txt", score=CLOSE + 0.1)
    assert (
        decide("What is the warranty on rocket skates?", [WARRANTY, other])[0] == "Parking costs nothing on weekends."
    )


@pytest.mark.parametrize("knowledge", [[WARRANTY.__class__(WARRANTY.text, WARRANTY.source, FAR)], []])
def test_documents_that_do_not_fit_mean_i_dont_know(knowledge: list[KnowledgeChunk]) -> None:
    reply, intent, understood = decide("When is the monorail tour?", knowledge)
    assert reply == "I'm sorry, I don't know that. Is there anything else I can help you with?"
    assert (intent, understood) == (None, False)


def test_a_domain_without_documents_gets_the_offer_of_help() -> None:
    reply, intent, understood = decide("When is the monorail tour?", None)
    assert reply.startswith("I'm sorry, I didn't understand. I can tell you our opening hours")
    assert (intent, understood) == (None, False)


@pytest.mark.parametrize(
    ("question", "expected_reply", "expected_intent"),
    [
        ("Do you have parking?", "Yes, there is free parking behind the building.", None),
        ("Where are you located?", "We are at 100 Main Street in Springfield, next to the train station.", None),
        ("What are your opening hours?", "open right now", None),
        ("Please put me through to billing", "putting you through to Billing", Intent.TRANSFER),
        ("I'd like to leave a message", "Who is the message for?", None),
        ("Goodbye", "Thank you for calling Acme. Goodbye!", Intent.HANGUP),
    ],
)
def test_the_domains_own_rules_win_over_documents(
    question: str, expected_reply: str, expected_intent: Intent | None
) -> None:
    # A passage that (wrongly) looks very close must not override what the admin configured.
    loud = KnowledgeChunk(text="Our documents say something else entirely.", source="z.txt", score=0.99)
    reply, intent, _ = decide(question, [loud])
    assert expected_reply in reply
    assert intent == expected_intent
