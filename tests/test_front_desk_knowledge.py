"""The front desk and knowledge: it reads a passage only when the passage answers the question (the check of
`knowledge.grounding`), says it doesn't have that information otherwise, and lets the domain's own rules
(transfers, messages, opening hours, FAQ) win over documents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from secretary.calls.prompts import prompts_for
from secretary.conversation.brain import BrainRequest, Intent, KnowledgeChunk
from secretary.conversation.front_desk import FrontDesk
from tests.conftest import acme_config

NO_INFORMATION = prompts_for("en").no_information
WARRANTY = KnowledgeChunk(
    text="Every anvil carries a ten-year warranty against cracks. Rocket skates have a two-year warranty.",
    source="guide.md: Warranty",
    score=0.7,
    answer="Rocket skates have a two-year warranty.",
    floor=0.25,
)


def decide(
    text: str, knowledge: Sequence[KnowledgeChunk] | None, language: str = "en"
) -> tuple[str, Intent | None, bool]:
    request = BrainRequest(
        config=acme_config().model_copy(update={"language": language}),
        history=(),
        caller_text=text,
        now=datetime(2025, 1, 7, 15, 0, tzinfo=UTC),  # a Tuesday, 10:00 in New York: open
        knowledge=knowledge,
    )
    reply, decision, understood = FrontDesk().decide(request)
    return reply, decision.intent if decision else None, understood


def test_a_passage_that_answers_is_read_from_its_answer_sentence() -> None:
    assert decide("What is the warranty on rocket skates?", [WARRANTY]) == (
        "Rocket skates have a two-year warranty.",
        None,
        True,
    )


def test_a_question_for_a_value_gets_the_sentence_that_holds_it_for_the_thing_asked() -> None:
    # The knowledge base picked the skates' sentence; the anvil's is the one that answers.
    assert decide("How long is the warranty on an anvil?", [WARRANTY])[0] == (
        "Every anvil carries a ten-year warranty against cracks."
    )


def test_the_heading_names_what_the_sentences_leave_out() -> None:
    sauna = KnowledgeChunk(
        "It is free at weekends. On weekdays it costs two dollars an hour.", "spa.md: Sauna", 0.6, floor=0.25
    )
    assert decide("Is the sauna free at weekends?", [sauna])[0] == "It is free at weekends."
    assert decide("How much is the sauna on weekdays?", [sauna])[0] == "On weekdays it costs two dollars an hour."
    # A heading that names several things can't say whose a value is.
    both = KnowledgeChunk(sauna.text, "spa.md: Sauna and pool", 0.6, floor=0.25)
    assert decide("How much is the sauna on weekdays?", [both])[0] == NO_INFORMATION


def test_a_close_passage_about_something_else_is_not_read() -> None:
    neutering = KnowledgeChunk(
        "We neuter dogs, cats and rabbits from six months of age. Neutering a cat costs 90 pounds.",
        "vets.md: Neutering",
        0.72,
        "Neutering a cat costs 90 pounds.",
        floor=0.25,
    )
    assert decide("How much does it cost to neuter a dog?", [neutering]) == (NO_INFORMATION, None, False)
    assert decide("How much does it cost to neuter a cat?", [neutering])[0] == "Neutering a cat costs 90 pounds."
    assert decide("Do you microchip dogs?", [neutering]) == (NO_INFORMATION, None, False)


def test_the_closest_passage_that_answers_wins() -> None:
    closer = KnowledgeChunk("Rocket skates are sold in pairs.", "skates.md", 0.8, floor=0.25)
    further = KnowledgeChunk("Anvil warranties last ten years.", "anvils.md", 0.5, floor=0.25)
    other = KnowledgeChunk("The anvil warranty covers cracks.", "anvils.md", 0.45, floor=0.25)
    assert decide("What does the anvil warranty cover?", [closer, other, further])[0] == (
        "The anvil warranty covers cracks."
    )


def test_a_passage_under_its_collections_floor_is_not_read() -> None:
    low = KnowledgeChunk(WARRANTY.text, WARRANTY.source, 0.3, WARRANTY.answer, floor=0.35)
    assert decide("What is the warranty on rocket skates?", [low]) == (NO_INFORMATION, None, False)


@pytest.mark.parametrize("knowledge", [[WARRANTY], []])
def test_documents_that_do_not_answer_mean_no_information_and_an_offer(knowledge: list[KnowledgeChunk]) -> None:
    reply, intent, understood = decide("When is the monorail tour?", knowledge)
    assert reply == "I'm sorry, I don't have that information. I can take a message or put you through to a colleague."
    assert (intent, understood) == (None, False)


def test_the_offer_is_in_the_domains_language() -> None:
    assert decide("Wann ist die Monorail-Tour?", [WARRANTY], language="de")[0] == prompts_for("de").no_information


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
    # A passage that (wrongly) looks very close and names everything asked must not override the admin's config.
    loud = KnowledgeChunk(f"{question} Our documents say something else entirely.", "z.txt", 0.99)
    reply, intent, _ = decide(question, [loud])
    assert expected_reply in reply
    assert intent == expected_intent
