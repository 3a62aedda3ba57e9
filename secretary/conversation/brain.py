"""The `Brain` interface: given the conversation so far and what the caller said, stream the reply.

A brain streams `TextDelta`s (so the realtime path can speak the first sentence early) and ends with at most
one `Decision`. Decisions name directory entries, not extensions: `Conversation` resolves them against the
domain's config, so no brain (and no model output) can route a call outside the domain's directory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel

from secretary.conversation.desk_state import DeskState
from secretary.conversation.meaning import Understood
from secretary.tenants.config import SecretaryConfig


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class KnowledgeChunk:
    """A passage from the domain's knowledge base with the document it came from. `score` is how close it
    is to the question (cosine similarity); `answer`, when the knowledge base picked one, is the passage's
    sentence nearest to the question, for a brain that reads out rather than writes its reply. `floor` is the
    score off-topic questions reach in the passage's collection (`knowledge.grounding.floor_from`)."""

    text: str
    source: str
    score: float
    answer: str | None = None
    floor: float = 0.0


@dataclass(frozen=True, slots=True)
class BrainRequest:
    config: SecretaryConfig
    history: Sequence[ChatMessage]
    caller_text: str
    now: datetime
    knowledge: Sequence[KnowledgeChunk] | None = None  # None: the domain has no knowledge base
    misunderstood_before: int = 0
    desk: DeskState = field(default_factory=DeskState)  # what the front desk asked last turn
    caller_id_number: str = ""
    caller_id_name: str = ""
    understood: Understood | None = None  # the caller's words by meaning (`conversation.meaning`), if known


class Intent(StrEnum):
    TRANSFER = "transfer"
    OPERATOR = "operator"
    HANGUP = "hangup"
    TAKE_MESSAGE = "take_message"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Decision:
    intent: Intent
    target: str | None = None  # a directory entry's name, for TRANSFER


@dataclass(frozen=True, slots=True)
class Retract:
    """The text streamed so far is void (its brain failed mid-reply); another brain answers instead."""


@dataclass(frozen=True, slots=True)
class Finished:
    """Last event of a reply: which brain answered, which failed before it, and whether the caller's
    words were understood (two misunderstandings in a row send the caller to a person). Token counts are
    the provider's own, when it reports them."""

    brain: str
    understood: bool = True
    failed: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    desk: DeskState | None = None  # the front desk's state after this reply (None: another brain answered)
    personal: bool = False  # the reply speaks the caller's own details (never cached as audio)


BrainEvent = TextDelta | Decision | Retract | Finished


class ReplyWithheld(Exception):
    """A brain's own guard withheld its reply (it read out its instructions, or stated a number the facts
    don't hold): the chain asks the next brain, and does not bench this one, which is up; only this reply
    was bad."""


class Brain(Protocol):
    name: str

    def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]: ...
