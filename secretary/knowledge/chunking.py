"""Cutting a document into passages for the index: whole sentences, a bounded size, a little overlap.

Passages start and end on sentence boundaries, so the front desk can read a passage's sentences aloud
as they are. Consecutive passages share their edge sentences (the overlap), so a fact that straddles a
cut is still found whole in one of them. A heading starts a new passage and travels with it (in the text
that is embedded, and in its source), not in the text read to a caller. A passage never spans two PDF
pages, so its source names one page. A paragraph without closing punctuation (a list item, a title line)
is closed with a full stop, so it reads as a sentence of its own instead of running into the next one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from secretary.knowledge.extraction import HEADING_MARK, Section
from secretary.speech.sentences import split_sentences

_CLOSED = re.compile(r"[.!?;:…)\]\"'”’]$")


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str
    index: int  # position of the passage in its document, from 0
    page: int | None = None
    heading: str | None = None

    @property
    def embedding_text(self) -> str:
        """What is embedded: the heading says what the passage is about ("Shipping. We deliver to …")."""
        return f"{self.heading}. {self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    starts_paragraph: bool
    heading: bool = False


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """A "sentence" longer than a passage (a table row, a run-on line) is cut between words."""
    pieces: list[str] = []
    current = ""
    for word in sentence.split(" "):
        while len(word) > max_chars:  # one unbroken token longer than a passage
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _units(text: str, max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for paragraph in text.split("\n\n"):
        paragraph = " ".join(paragraph.split())
        if paragraph == HEADING_MARK.strip() or paragraph.startswith(HEADING_MARK):
            title = paragraph[1:].strip().rstrip(".:")
            if title:
                units.append(_Unit(title[:max_chars], True, heading=True))
            continue
        if not paragraph:
            continue
        if not _CLOSED.search(paragraph):
            paragraph += "."
        first = True
        for sentence in split_sentences(paragraph):
            for piece in _split_long(sentence, max_chars):
                units.append(_Unit(piece, first))
                first = False
    return units


def chunk_sections(sections: Sequence[Section], max_chars: int, overlap_chars: int) -> list[TextChunk]:
    """Pack sentences into passages of at most `max_chars`; each passage repeats the last sentences of the
    one before, up to `overlap_chars`. A heading, or a new paragraph once the passage is half full, starts a
    new passage (without overlap): a passage about one topic matches a question about it best."""
    if max_chars < 20 or not 0 <= overlap_chars < max_chars:
        raise ValueError("need max_chars >= 20 and 0 <= overlap_chars < max_chars")
    chunks: list[TextChunk] = []
    for section in sections:
        current: list[str] = []
        fresh = 0  # sentences in `current` that no earlier passage holds
        heading: str | None = None
        for unit in _units(section.text, max_chars):
            size = sum(len(s) + 1 for s in current)
            new_topic = unit.heading or (unit.starts_paragraph and size > max_chars // 2)
            if fresh and (new_topic or size + len(unit.text) > max_chars):
                chunks.append(TextChunk(" ".join(current), len(chunks), section.page, heading))
                # A heading or a paragraph break is a natural cut: the next passage starts clean.
                current, fresh = ([] if new_topic else _overlap(current, overlap_chars)), 0
            if unit.heading:
                current, heading = [], unit.text
                continue
            while current and sum(len(s) + 1 for s in current) + len(unit.text) > max_chars:
                current.pop(0)  # the overlap must not push the passage over its size
            current.append(unit.text)
            fresh += 1
        if fresh:
            chunks.append(TextChunk(" ".join(current), len(chunks), section.page, heading))
    return chunks


def reading_sentences(text: str) -> list[str]:
    """A passage's sentences as a caller should hear them: `split_sentences` also cuts at ";" and ":" (for
    speaking early), but a clause read alone ("… on the motor;") sounds cut off, so those are joined back."""
    sentences: list[str] = []
    for piece in split_sentences(text):
        if sentences and sentences[-1].endswith((";", ":")):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    return sentences


def _overlap(sentences: list[str], overlap_chars: int) -> list[str]:
    kept: list[str] = []
    size = 0
    for sentence in reversed(sentences[1:]):  # never the whole passage again
        if size + len(sentence) + 1 > overlap_chars:
            break
        kept.insert(0, sentence)
        size += len(sentence) + 1
    return kept
