"""What a caller means when the front desk's rules don't say: the caller's words against example phrasings of
each intent and against the domain's FAQ questions, by cosine similarity of the offline MiniLM embeddings the
knowledge base already runs.

Used only where the rules found nothing (a paraphrase: "are you around on Saturdays?", "could you tell her I
rang?"), and only when one intent is clearly nearest: a close second means the caller is not understood, which
the front desk says rather than guess. The examples are general receptionist phrasings, not any tenant's words;
English only (another language gets no meaning and keeps the rules).
Calibrated on paraphrases and unrelated questions (tests/test_meaning.py): intended ones score 0.45–0.75,
unrelated ones at most about 0.40.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np
import structlog

from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

INTENT_MIN = 0.45  # the nearest example must be at least this close…
INTENT_MARGIN = 0.10  # …and this much closer than the nearest example of another intent
FAQ_MIN = 0.60  # an FAQ line's question must be this close (its answer is read out: a fact)
FAQ_MARGIN = 0.10
TIMEOUT_S = 1.0  # the turn goes on without meaning rather than wait


class Meant(StrEnum):
    HOURS = "hours"
    ADDRESS = "address"
    MESSAGE = "message"
    GOODBYE = "goodbye"
    HUMAN = "human"
    URGENT = "urgent"


EXAMPLES: dict[Meant, tuple[str, ...]] = {
    Meant.HOURS: (
        "what are your opening hours",
        "what time do you open",
        "when do you close today",
        "until when are you there",
        "are you open on the weekend",
        "are you still open at this time",
        "what days are you working",
    ),
    Meant.ADDRESS: (
        "where are you located",
        "what is your address",
        "how do I get to you",
        "how do I find your place",
        "which street are you on",
        "what's the best way to get there",
    ),
    Meant.MESSAGE: (
        "I want to leave a message",
        "can you pass on a message",
        "please tell him I called",
        "could you ask her to call me back",
        "I'd like someone to ring me back",
    ),
    Meant.GOODBYE: (
        "that's all, goodbye",
        "no that's everything, thanks, bye",
        "okay I'll let you go now",
        "I've got what I needed, thank you",
    ),
    Meant.HUMAN: (
        "can I talk to a real person",
        "I want to speak to a human",
        "is there someone I can talk to",
        "get me somebody who works there",
    ),
    Meant.URGENT: (
        "it's an emergency",
        "this is urgent, it can't wait",
        "I need help right now, something terrible happened",
        "please hurry, it's serious",
    ),
}


@dataclass(frozen=True, slots=True)
class Understood:
    """The nearest intent and FAQ line, each only when clearly nearest (else None)."""

    intent: Meant | None = None
    faq: int | None = None  # index into the domain's `faq`


Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
K = TypeVar("K", bound=Hashable)


def _unit(rows: list[list[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms == 0, 1, norms), dtype=np.float32)


def _clear_winner(scores: Sequence[tuple[float, K]], minimum: float, margin: float) -> K | None:
    """The label of the best score when it is high enough and ahead of every other label by `margin`."""
    if not scores:
        return None
    ranked = sorted(scores, key=lambda pair: pair[0], reverse=True)
    best, label = ranked[0]
    rival = next((score for score, other in ranked[1:] if other != label), -1.0)
    return label if best >= minimum and best - rival >= margin else None


class MeaningModel:
    """Understands a caller's words with the local MiniLM (`embed`: the engine pool's embedder)."""

    def __init__(self, embed: Embed) -> None:
        self._embed = embed
        self._examples: tuple[np.ndarray, list[Meant]] | None = None
        self._faq: dict[str, np.ndarray] = {}  # a question's vector, by its text (shared by every domain)

    async def understand(self, text: str, config: SecretaryConfig) -> Understood | None:
        """None when there is nothing to understand, the language is not English, or the embedder fails."""
        if not text.strip() or not config.language.startswith("en"):
            return None
        try:
            examples = await self._example_vectors()  # once a process: not this turn's deadline
            async with asyncio.timeout(TIMEOUT_S):
                return await self._understand(text, config, examples)
        except Exception as exc:  # meaning is a help, never a failure of the turn
            log.warning("meaning_unavailable", error=str(exc) or type(exc).__name__)
            return None

    async def _understand(
        self, text: str, config: SecretaryConfig, known: tuple[np.ndarray, list[Meant]]
    ) -> Understood:
        examples, labels = known
        questions = [entry.question for entry in config.faq]
        missing = [q for q in questions if q not in self._faq]
        vectors = _unit(await self._embed([text, *missing]))
        for question, vector in zip(missing, vectors[1:], strict=True):
            self._faq[question] = vector
        said = vectors[0]
        by_example = [(float(score), label) for score, label in zip(examples @ said, labels, strict=True)]
        intent = _clear_winner(by_example, INTENT_MIN, INTENT_MARGIN)
        faq = None
        if questions:
            by_question = np.stack([self._faq[q] for q in questions]) @ said
            faq = _clear_winner([(float(score), i) for i, score in enumerate(by_question)], FAQ_MIN, FAQ_MARGIN)
        return Understood(intent, faq)

    async def _example_vectors(self) -> tuple[np.ndarray, list[Meant]]:
        if self._examples is None:
            labels = [meant for meant, phrases in EXAMPLES.items() for _ in phrases]
            phrases = [phrase for group in EXAMPLES.values() for phrase in group]
            self._examples = (_unit(await self._embed(phrases)), labels)
        return self._examples
