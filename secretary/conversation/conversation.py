"""`Conversation`: one call's dialogue. It asks the brain, turns its decision into an `Action` that stays
inside the domain (directory entries and the fallback destination only), and keeps the history.

The same object serves a v1 turn (`respond`: the whole reply at once) and a v2 streaming turn (`stream`:
sentences as soon as they are complete, then the finished `Reply`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from secretary.calls.prompts import Prompts, prompts_for
from secretary.conversation.actions import Action
from secretary.conversation.brain import (
    Brain,
    BrainRequest,
    ChatMessage,
    Decision,
    Finished,
    Intent,
    KnowledgeChunk,
    Retract,
    TextDelta,
)
from secretary.conversation.desk_state import DeskState
from secretary.conversation.meaning import MeaningModel
from secretary.conversation.names import match_name, normalise
from secretary.errors import SecretaryError
from secretary.speech.sentences import SentenceBuffer
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

HISTORY_LIMIT = 24


class KnowledgeSearch(Protocol):
    """The domain's knowledge base, as the conversation needs it. Either may raise `SecretaryError`
    (the index is down or slow): the turn then goes on without knowledge."""

    async def has_documents(self, domain_uuid: str) -> bool: ...

    async def search(self, domain_uuid: str, query: str) -> list[KnowledgeChunk]: ...


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    action: Action
    brain: str
    failed: tuple[str, ...] = ()
    understood: bool = True
    personal: bool = False  # it speaks the caller's own details (a message's read-back): never cached as audio


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str


@dataclass(frozen=True, slots=True)
class ReplyDone:
    reply: Reply


ReplyEvent = Sentence | ReplyDone


class Conversation:
    def __init__(
        self,
        config: SecretaryConfig,
        brain: Brain,
        history: list[ChatMessage] | None = None,
        *,
        turns: int = 0,
        misunderstood: int = 0,
        knowledge: KnowledgeSearch | None = None,
        meaning: MeaningModel | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        prompts: Prompts | None = None,
        desk: DeskState | None = None,
        caller_id_number: str = "",
        caller_id_name: str = "",
    ) -> None:
        self.config = config
        self.prompts = prompts or prompts_for(config.language)
        self.history: list[ChatMessage] = history if history is not None else []
        self.turns = turns
        self.misunderstood = misunderstood
        self.desk = desk or DeskState()  # what the front desk asked last (reset when another brain answers)
        self._caller = (caller_id_number, caller_id_name)
        self._brain = brain
        self._knowledge = knowledge
        self._meaning = meaning
        self._clock = clock

    async def respond(self, caller_text: str) -> Reply:
        async for event in self.stream(caller_text):
            if isinstance(event, ReplyDone):
                return event.reply
        raise RuntimeError("conversation stream ended without a reply")  # pragma: no cover

    async def stream(self, caller_text: str) -> AsyncIterator[ReplyEvent]:
        self.turns += 1
        if self.turns > self.config.max_turns:
            reply = Reply(
                self.prompts.turn_limit,
                Action.transfer(self.config.fallback_destination, self.config.context),
                "turn_limit",
            )
            yield Sentence(reply.text)
            self._remember(caller_text, reply)
            yield ReplyDone(reply)
            return

        knowledge = await self._knowledge_for(caller_text)
        understood = await self._meaning.understand(caller_text, self.config) if self._meaning else None
        request = BrainRequest(
            config=self.config,
            history=tuple(self.history),
            caller_text=caller_text,
            now=self._clock(),
            knowledge=knowledge,
            misunderstood_before=self.misunderstood,
            desk=self.desk,
            caller_id_number=self._caller[0],
            caller_id_name=self._caller[1],
            understood=understood,
        )
        buffer = SentenceBuffer()
        spoken: list[str] = []
        decision: Decision | None = None
        finished = Finished(self._brain.name)
        async for event in self._brain.stream(request):
            if isinstance(event, TextDelta):
                for sentence in buffer.feed(event.text):
                    spoken.append(sentence)
                    yield Sentence(sentence)
            elif isinstance(event, Decision):
                decision = decision or event
            elif isinstance(event, Retract):
                buffer, spoken, decision = SentenceBuffer(), [], None
            else:
                finished = event
        for sentence in buffer.flush():
            spoken.append(sentence)
            yield Sentence(sentence)

        action, extra = self._resolve(decision)
        if extra and (not spoken or action.type.value == "continue"):
            spoken.append(extra)
            yield Sentence(extra)
        reply = Reply(" ".join(spoken), action, finished.brain, finished.failed, finished.understood, finished.personal)
        self.misunderstood = 0 if reply.understood else self.misunderstood + 1
        self.desk = finished.desk or DeskState()
        self._remember(caller_text, reply)
        yield ReplyDone(reply)

    async def _knowledge_for(self, caller_text: str) -> list[KnowledgeChunk] | None:
        """None when the domain has no documents (or they can't be searched now); else the passages."""
        if self._knowledge is None or not caller_text.strip():
            return None
        domain = str(self.config.domain_uuid)
        try:
            if not await self._knowledge.has_documents(domain):
                return None
            return await self._knowledge.search(domain, caller_text)
        except SecretaryError as exc:
            log.warning("knowledge_unavailable", error=exc.message)
            return None

    def resolve(self, decision: Decision | None) -> tuple[Action, str]:
        """For engines that decide outside `stream` (a realtime model's tool call): the same rules apply."""
        return self._resolve(decision)

    def _resolve(self, decision: Decision | None) -> tuple[Action, str]:
        """The action a decision stands for, and a sentence to say if the brain said nothing."""
        config = self.config
        if decision is None:
            return Action.continue_(), ""
        if decision.intent is Intent.HANGUP:
            return Action.hangup(), config.farewell
        if decision.intent is Intent.TAKE_MESSAGE:
            return Action.take_message(), self.prompts.leave_message
        if decision.intent is Intent.OPERATOR:
            return Action.transfer(config.fallback_destination, config.context), self.prompts.operator
        target = config.target_by_name(decision.target or "")
        if target is None:
            match = match_name(config, normalise(decision.target or ""))
            target = match.target if match is not None and match.sure else None
        if target is None:
            return Action.continue_(), self.prompts.not_found(decision.target or "")
        return Action.transfer(target.extension, config.context), self.prompts.through_to(target.name)

    def _remember(self, caller_text: str, reply: Reply) -> None:
        self.history.append(ChatMessage(role="user", content=caller_text))
        self.history.append(ChatMessage(role="assistant", content=reply.text))
        del self.history[:-HISTORY_LIMIT]

    def note_interrupted(self, heard: str) -> None:
        """Barge-in: the caller heard only `heard` of the last reply; the history keeps what was heard."""
        if self.history and self.history[-1].role == "assistant":
            self.history[-1] = ChatMessage(role="assistant", content=self.prompts.cut_off(heard))
