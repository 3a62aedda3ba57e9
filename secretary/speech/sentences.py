"""Sentence boundaries, so TTS can start speaking the first sentence while the brain writes the next."""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "mt", "jr", "sr", "prof", "no", "vs", "etc", "e.g", "i.e", "approx", "ext"}
)
_BOUNDARY = re.compile(r"([.!?;:]+)(['\")\]]*)(\s+)")


def _is_boundary(text: str, punct_start: int, punct: str) -> bool:
    if punct != ".":
        return True
    word = re.search(r"([\w.]+)$", text[:punct_start])
    if word is None:
        return True
    token = word.group(1).casefold()
    return token not in _ABBREVIATIONS and not (len(token) == 1 and token.isalpha())


class SentenceBuffer:
    """Feed text deltas as they stream; get back each sentence once it is complete."""

    def __init__(self, min_chars: int = 12) -> None:
        self._pending = ""
        self._min_chars = min_chars

    def feed(self, delta: str) -> list[str]:
        self._pending += delta
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._pending):
            end = match.end(2)
            candidate = self._pending[start:end].strip()
            if len(candidate) >= self._min_chars and _is_boundary(self._pending, match.start(1), match.group(1)):
                sentences.append(candidate)
                start = match.end(3)
        self._pending = self._pending[start:]
        return sentences

    def flush(self) -> list[str]:
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []


def split_sentences(text: str) -> list[str]:
    buffer = SentenceBuffer()
    return buffer.feed(text + " ") + buffer.flush()


def split_first_clause(sentence: str, min_chars: int = 20) -> list[str]:
    """A long sentence cut after its first comma-ended clause (when both parts are worth speaking alone), so
    TTS can voice the opening words while it works on the rest: the caller hears the answer begin sooner,
    and a comma is a place where a speaker pauses anyway."""
    start = 0
    while (comma := sentence.find(", ", start)) >= 0:
        head, tail = sentence[: comma + 1], sentence[comma + 2 :]
        if len(head) >= min_chars and len(tail) >= min_chars // 2:
            return [head, tail]
        start = comma + 2
    return [sentence]
