"""An LLM brain on Anthropic's Messages API through the official `anthropic` SDK, streaming text and deciding
actions with tool use.

The prompt and the tools are the OpenAI brain's (`llm_brain`), reshaped: the system prompt goes in `system`,
each tool is `name`/`description`/`input_schema`, and a `tool_use` block's input becomes a `Decision` by the
same `decision_from_tool`, so every brain decides alike and the conversation still resolves each transfer
inside the domain. SDK errors (status, overloaded, connection, timeout) propagate unchanged: the chain falls
over on any of them and benches the provider, honouring `retry-after`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from anthropic import AsyncAnthropic

from secretary.conversation.brain import BrainEvent, BrainRequest, Finished, TextDelta
from secretary.conversation.llm_brain import (
    ReplyGuard,
    conversation_messages,
    decision_from_tool,
    system_prompt,
    tool_schemas,
)

# The Messages API wants the conversation to open with the caller; ours opens with the greeting.
CALL_STARTS = "(the call starts)"


def anthropic_tools(request: BrainRequest) -> list[dict[str, Any]]:
    return [
        {
            "name": tool["function"]["name"],
            "description": tool["function"]["description"],
            "input_schema": tool["function"]["parameters"],
        }
        for tool in tool_schemas(request)
    ]


def anthropic_messages(request: BrainRequest) -> list[dict[str, Any]]:
    """The chat without its system message, opening with a user turn, one turn per role in a row (the API
    would merge them anyway) and no empty text (which it rejects)."""
    messages: list[dict[str, Any]] = []
    for message in conversation_messages(request):
        text = str(message["content"]).strip()
        if not text:
            continue
        if not messages and message["role"] == "assistant":
            messages.append({"role": "user", "content": CALL_STARTS})
        if messages and messages[-1]["role"] == message["role"]:
            messages[-1]["content"] += "\n" + text
        else:
            messages.append({"role": message["role"], "content": text})
    return messages


def _input_tokens(usage: Any) -> int | None:
    """Input tokens of a usage object, cache reads and writes included (they are billed input too)."""
    tokens = getattr(usage, "input_tokens", None)
    if tokens is None:
        return None
    cached = (getattr(usage, "cache_creation_input_tokens", None) or 0) + (
        getattr(usage, "cache_read_input_tokens", None) or 0
    )
    return int(tokens) + int(cached)


async def anthropic_events(
    name: str, events: AsyncIterator[Any], guard: ReplyGuard | None = None
) -> AsyncIterator[BrainEvent]:
    """Messages stream events → text deltas, at most one decision (the first tool call), `Finished`; each
    delta passes `guard` first, as the OpenAI brain's do (a `ReplyWithheld` ends the stream)."""
    tools: dict[int, list[str]] = {}  # content block index -> [tool name, its input JSON so far]
    prompt_tokens = completion_tokens = 0
    async for event in events:
        if event.type == "message_start":
            prompt_tokens = _input_tokens(event.message.usage) or 0
            completion_tokens = int(event.message.usage.output_tokens or 0)
        elif event.type == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            tools[event.index] = [block.name, json.dumps(block.input) if block.input else ""]
        elif event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta" and delta.text:
                if guard is not None:
                    guard.feed(delta.text)
                yield TextDelta(delta.text)
            elif delta.type == "input_json_delta" and event.index in tools:
                tools[event.index][1] += delta.partial_json
        elif event.type == "message_delta":
            prompt_tokens = _input_tokens(event.usage) or prompt_tokens  # cumulative, when sent
            completion_tokens = int(event.usage.output_tokens)
    if guard is not None:
        guard.finish()
    for _, (tool, arguments) in sorted(tools.items()):
        decision = decision_from_tool(tool, arguments)
        if decision is not None:
            yield decision
            break
    yield Finished(name, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


Thinking = Literal["disabled", "adaptive"]


class AnthropicBrain:
    """`max_tokens` is required by the API; 300 bounds a phone reply of one to three sentences with room for a
    tool call. `thinking` is off by default: a caller waits for every token of it (and it counts against
    `max_tokens`); None leaves it to the model's default. The current API takes no `temperature`."""

    def __init__(
        self,
        client: AsyncAnthropic,
        model: str,
        *,
        max_tokens: int = 300,
        thinking: Thinking | None = "disabled",
        name: str = "anthropic",
    ) -> None:
        self.name = name
        self._client = client
        self._model = model
        self._max_tokens = max_tokens
        self._thinking = thinking

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        extra: dict[str, Any] = {"thinking": {"type": self._thinking}} if self._thinking else {}
        system = system_prompt(request)
        stream: Any = await self._client.messages.create(
            model=self._model,
            system=system,
            messages=anthropic_messages(request),  # type: ignore[arg-type]
            tools=anthropic_tools(request),  # type: ignore[arg-type]
            max_tokens=self._max_tokens,
            stream=True,
            **extra,
        )
        try:
            async for event in anthropic_events(self.name, stream, ReplyGuard.for_request(request, system)):
                yield event
        finally:
            await stream.close()

    async def probe(self) -> None:
        await self._client.models.list()
