"""Chunking properties: bounded passages of whole sentences, everything covered in order, bounded overlap,
headings carried beside the text, one page per passage."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from secretary.knowledge.chunking import chunk_sections, reading_sentences
from secretary.knowledge.extraction import Section

WORDS = st.sampled_from(
    [
        *("anvil", "rocket", "skates", "warranty", "delivery", "invoice", "refund", "customer", "parking"),
        *("Monday", "thirty", "dollars", "the", "a", "of", "and", "to", "within", "supersonicallyunbreakablepart"),
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """Paragraphs and headings; every word is numbered (anvil7), so where one passage's text recurs in the
    next is unambiguous."""
    blocks: list[str] = []
    counter = 0

    def numbered(words: list[str]) -> list[str]:
        nonlocal counter
        counter += len(words)
        return [f"{w}{counter - len(words) + i}" for i, w in enumerate(words)]

    for _ in range(draw(st.integers(1, 12))):
        if draw(st.integers(0, 2)) == 0:
            blocks.append("# " + " ".join(numbered(draw(st.lists(WORDS, min_size=1, max_size=5)))))
            continue
        sentences = []
        for _ in range(draw(st.integers(1, 6))):
            words = numbered(draw(st.lists(WORDS, min_size=1, max_size=40)))
            sentences.append(" ".join(words).capitalize() + draw(st.sampled_from([".", "!", "?", ""])))
        blocks.append(" ".join(sentences))
    return "\n\n".join(blocks)


DOCUMENT = documents()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


@settings(max_examples=150, deadline=None)
@given(text=DOCUMENT, max_chars=st.integers(60, 700), overlap_ratio=st.floats(0, 0.5))
def test_passages_are_bounded_cover_everything_in_order_and_overlap_a_little(
    text: str, max_chars: int, overlap_ratio: float
) -> None:
    overlap = int(max_chars * overlap_ratio)
    chunks = chunk_sections([Section(text)], max_chars, overlap)
    body = [p for p in text.split("\n\n") if not p.startswith("# ")]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip() == chunk.text and chunk.text
        assert len(chunk.text) <= max_chars
    # Every word of the body is in a passage, in document order: dropping each passage's overlap with
    # the one before it (a prefix) and concatenating gives the body back.
    rebuilt: list[str] = []
    for chunk in chunks:
        words = _words(chunk.text)
        shared = 0
        for size in range(min(len(words), len(rebuilt)), 0, -1):
            if rebuilt[-size:] == words[:size]:
                shared = size
                break
        rebuilt.extend(words[shared:])
    assert rebuilt == _words(" ".join(body))


@settings(max_examples=100, deadline=None)
@given(text=DOCUMENT, max_chars=st.integers(60, 700))
def test_overlap_never_exceeds_its_budget(text: str, max_chars: int) -> None:
    overlap = max_chars // 4
    chunks = chunk_sections([Section(text)], max_chars, overlap)
    for before, after in itertools.pairwise(chunks):
        shared = 0
        for size in range(min(len(before.text), len(after.text)), 0, -1):
            if before.text.endswith(after.text[:size]) and (size == len(after.text) or after.text[size] == " "):
                shared = size
                break
        assert shared <= overlap


def test_sentences_stay_whole_and_overlap_repeats_the_edge_sentence() -> None:
    sentences = [f"Sentence {i} says something about topic {i}." for i in range(12)]
    chunks = chunk_sections([Section(" ".join(sentences))], max_chars=200, overlap_chars=60)
    assert len(chunks) > 2
    for chunk in chunks:
        assert all(s in sentences for s in re.findall(r"Sentence \d+ [^.]*\.", chunk.text))
        assert chunk.text.startswith("Sentence") and chunk.text.endswith(".")
    for before, after in itertools.pairwise(chunks):
        last = re.findall(r"Sentence \d+ [^.]*\.", before.text)[-1]
        assert after.text.startswith(last)


def test_headings_start_passages_and_travel_beside_the_text() -> None:
    text = "# Acme guide\n\nWe make anvils.\n\n# Shipping\n\nWe ship to Canada.\n\nExpress costs more.\n\n#\n\n# Paying"
    chunks = chunk_sections([Section(text)], max_chars=400, overlap_chars=100)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Acme guide", "We make anvils."),
        ("Shipping", "We ship to Canada. Express costs more."),
    ]
    assert chunks[1].embedding_text == "Shipping. We ship to Canada. Express costs more."


def test_paragraphs_without_punctuation_read_as_sentences() -> None:
    chunks = chunk_sections([Section("Free parking\n\nWi-Fi in the lobby\n\nOpen daily.")], 400, 0)
    assert chunks[0].text == "Free parking. Wi-Fi in the lobby. Open daily."


def test_a_passage_never_spans_two_pages() -> None:
    sections = [Section("Page one talks about anvils.", page=1), Section("", page=2), Section("Skates.", page=3)]
    chunks = chunk_sections(sections, max_chars=400, overlap_chars=100)
    assert [(c.page, c.text, c.index) for c in chunks] == [(1, "Page one talks about anvils.", 0), (3, "Skates.", 1)]


def test_an_unbroken_token_longer_than_a_passage_is_cut() -> None:
    chunks = chunk_sections([Section("x" * 250 + " end.")], max_chars=100, overlap_chars=0)
    assert [c.text for c in chunks] == ["x" * 100, "x" * 100, "x" * 50 + " end."]


def test_reading_sentences_join_clauses_cut_at_semicolons() -> None:
    text = "Skates have a warranty on the motor; the wheels are not covered. Call us: we answer. Thanks."
    assert reading_sentences(text) == [
        "Skates have a warranty on the motor; the wheels are not covered.",
        "Call us: we answer.",
        "Thanks.",
    ]
