"""The tools every speech-to-speech engine offers its model, and what calling them does.

One definition for OpenAI Realtime, ElevenLabs Conversational AI and Gemini Live, so the three behave alike:
`transfer_call`, `take_message`, `end_call` (the LLM brain's tools, resolved by the core's `Conversation`:
a model can only transfer to the domain's directory or its fallback destination) and `lookup_knowledge`
(the domain's knowledge base when it has documents, and its FAQ). Each engine turns `definitions()` into its
vendor's schema and hands the model's calls to `ToolDesk.call`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from rapidfuzz import fuzz

from secretary.conversation.actions import Action, ActionType
from secretary.conversation.brain import BrainRequest, Intent
from secretary.conversation.conversation import Conversation
from secretary.conversation.llm_brain import decision_from_tool, system_prompt, tool_schemas
from secretary.conversation.names import normalise
from secretary.errors import SecretaryError
from secretary.knowledge import grounding
from secretary.runtime import Runtime
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)

LOOKUP = "lookup_knowledge"
LOOKUP_DEFINITION: dict[str, Any] = {
    "name": LOOKUP,
    "description": "Look up the company's facts (FAQ, documents) to answer a caller's question.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
PASSAGES = 3


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What goes back to the model (`output`), and what the call does once the model has spoken."""

    output: dict[str, Any]
    action: Action | None = None  # transfer / hang up / take a message, after the model's sentence
    decided: bool = False  # the model chose an action (even one that resolved to "continue")


def instructions(config: SecretaryConfig) -> str:
    """The model's instructions: the LLM brain's system prompt for the domain, as of now."""
    return system_prompt(BrainRequest(config, (), "", datetime.now(UTC)))


def definitions(config: SecretaryConfig) -> list[dict[str, Any]]:
    """name / description / parameters (JSON schema) of each tool."""
    request = BrainRequest(config, (), "", datetime.now(UTC))
    return [dict(schema["function"]) for schema in tool_schemas(request)] + [dict(LOOKUP_DEFINITION)]


class ToolDesk:
    def __init__(self, runtime: Runtime, config: SecretaryConfig, conversation: Conversation) -> None:
        self._runtime = runtime
        self._config = config
        self._conversation = conversation

    async def call(self, name: str, arguments: str | dict[str, Any]) -> ToolResult:
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        if name == LOOKUP:
            return ToolResult({"passages": await self.lookup(text)})
        decision = decision_from_tool(name, text)
        if decision is None:
            return ToolResult({"ok": False, "error": f"unknown tool {name}"})
        action, sentence = self._conversation.resolve(decision)
        if action.type is ActionType.CONTINUE:
            return ToolResult({"ok": False, "say": sentence}, decided=True)  # e.g. nobody of that name
        if decision.intent is Intent.TAKE_MESSAGE:
            action = Action.take_message()
        return ToolResult({"ok": True, "say": sentence}, action, decided=True)

    async def lookup(self, arguments: str) -> list[str]:
        """The FAQ entries close to the query, then the knowledge base's best passages (if it has any)."""
        try:
            query = str(json.loads(arguments).get("query", ""))
        except (json.JSONDecodeError, AttributeError):
            query = arguments
        heard = normalise(query)
        scored = [
            (fuzz.token_set_ratio(normalise(f.question), heard), f"{f.question} {f.answer}") for f in self._config.faq
        ]
        found = [text for score, text in sorted(scored, reverse=True)[:PASSAGES] if score >= 50]
        domain = str(self._config.domain_uuid)
        knowledge = self._runtime.knowledge
        try:
            if query.strip() and await knowledge.has_documents(domain):
                chunks = await knowledge.search(domain, query, limit=PASSAGES)
                found += [c.answer or c.text for c in grounding.supported(query, chunks, self._config.language)]
        except SecretaryError as exc:  # the index is down or slow: the FAQ still answers
            log.warning("knowledge_unavailable", error=exc.message)
        return found[:PASSAGES]
