"""The grounding check on its own: which words of a question a passage must name, which questions ask for a
value and what holds one, the collection's floor, and what a brain is given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from secretary.conversation.brain import BrainRequest, KnowledgeChunk
from secretary.conversation.llm_brain import system_prompt
from secretary.knowledge import grounding
from secretary.knowledge.grounding import Wanted, answer, floor_from, key_terms, supported, wanted
from tests.conftest import acme_config


def chunk(text: str, source: str = "doc.md", score: float = 0.6, picked: str | None = None) -> KnowledgeChunk:
    return KnowledgeChunk(text, source, score, picked, floor=0.25)


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        ("How much does it cost to neuter a dog?", {"neuter", "dog"}),
        ("Can you write my daughter's name on the cake?", {"write", "daughter", "name", "cake"}),
        ("What does a birthday cake for twelve people cost?", {"birthday", "cake", "12", "peopl"}),
        ("Do you deliver sandwiches to offices?", {"deliv", "sandwich", "offic"}),
        ("What is it?", set()),
    ],
)
def test_key_terms_are_stemmed_content_words_and_numbers(question: str, terms: set[str]) -> None:
    assert key_terms(question) == terms


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much is a rye loaf?", Wanted.PRICE),
        ("What is your fixed fee for a divorce?", Wanted.PRICE),
        ("How many people can join the class?", Wanted.COUNT),
        ("How long does probate take?", Wanted.MEASURE),
        ("How old must my cat be?", Wanted.MEASURE),
        ("When is the bread making class?", Wanted.WHEN),
        ("Which day do you bake spelt bread?", Wanted.WHEN),
        ("Do you take pet insurance?", None),
    ],
)
def test_questions_that_ask_for_a_value(question: str, kind: Wanted | None) -> None:
    assert wanted(question) is kind


@pytest.mark.parametrize(
    ("question", "text", "said"),
    [
        ("How much is a large loaf?", "We bake daily. A large loaf costs 4 euros.", "A large loaf costs 4 euros."),
        ("How much is a large loaf?", "We bake large loaves every day, from spelt.", None),  # no price
        ("How much is a rye loaf?", "We bake rye and sourdough. A sourdough loaf costs 4 euros.", None),  # not rye's
        ("How long is the warranty?", "The warranty lasts twelve months.", "The warranty lasts twelve months."),
        ("How long is the warranty?", "Our warranty covers parts and labour.", None),
        ("How many cats can I bring?", "Bring your cat in a carrier. Visits last 15 minutes.", None),
        ("How many people can join?", "Up to eight people can join a class.", "Up to eight people can join a class."),
        ("When is the class?", "The class is on Saturday afternoons.", "The class is on Saturday afternoons."),
        ("By what time must I order?", "Orders must reach us by 3 PM.", "Orders must reach us by 3 PM."),
        ("When is breakfast?", "Breakfast is from 7 to 10:30.", "Breakfast is from 7 to 10:30."),
        ("Is delivery free?", "Delivery is free over 60 euros.", "Delivery is free over 60 euros."),
    ],
)  # fmt: skip
def test_a_value_question_gets_the_sentence_that_holds_the_value_for_the_thing_asked(
    question: str, text: str, said: str | None
) -> None:
    found = answer(question, [chunk(text)])
    assert (found.say if found else None) == said


def test_without_a_picked_sentence_the_sentences_that_name_the_question_are_said() -> None:
    text = "Our kitchen handles nuts. We bake every morning. Nothing is free of traces of sesame."
    found = answer("Is the bread free of nuts and sesame?", [chunk(text)])
    assert found is None  # "bread" is not named
    found = answer("Is anything free of nuts and sesame?", [chunk(text)])
    assert found is not None and found.say == "Our kitchen handles nuts. Nothing is free of traces of sesame."


def test_a_picked_sentence_that_names_the_question_is_said_as_picked() -> None:
    passage = chunk("We accept Visa. We also accept American Express and bank transfer.", picked="We accept Visa.")
    assert answer("Do you accept Visa?", [passage]) == grounding.Grounded(passage, "We accept Visa.")


def test_a_passage_under_the_floor_does_not_answer_and_the_next_may() -> None:
    low = KnowledgeChunk("The warranty lasts two years.", "a.md", 0.2, floor=0.25)
    high = KnowledgeChunk("Skates are sold in pairs.", "b.md", 0.9, floor=0.25)
    assert answer("How long is the warranty?", [high, low]) is None
    assert supported("How long is the warranty?", [high, low]) == []
    ok = KnowledgeChunk("The warranty lasts two years.", "a.md", 0.3, floor=0.25)
    assert supported("How long is the warranty?", [high, ok]) == [ok]


def test_the_floor_follows_the_collections_probes_within_bounds() -> None:
    assert floor_from([0.05, 0.1, 0.15]) == 0.2  # a collection unlike small talk: the lower bound
    assert floor_from([0.1, 0.2, 0.22, 0.25, 0.5]) == pytest.approx(0.32)
    assert floor_from([0.4, 0.45, 0.5]) == 0.4  # everything is close to everything: the upper bound
    assert floor_from([]) == grounding.FLOOR_MIN


def test_the_llm_brain_is_given_only_the_passages_that_answer() -> None:
    cat = chunk("Neutering a cat costs 90 pounds.", "vets.md: Neutering", 0.72)

    def prompt(question: str) -> str:
        return system_prompt(BrainRequest(acme_config(), (), question, datetime(2025, 1, 7, tzinfo=UTC), [cat]))

    assert "[vets.md: Neutering] Neutering a cat costs 90 pounds." in prompt("How much is it to neuter a cat?")
    assert "90 pounds" not in prompt("How much is it to neuter a dog?")


def test_a_word_speech_recognition_split_in_two_is_taken_for_the_passages() -> None:
    passage = chunk("Globex hovercraft come with a lifetime warranty on the engine.")
    heard = "What is the warranty on the however craft engine?"  # Whisper, for "hovercraft"
    assert answer(heard, [passage]) == grounding.Grounded(passage, passage.text)
    assert answer("What is the warranty on the hover boat engine?", [passage]) is None
