"""An LLM brain over any OpenAI-compatible chat-completions server (OpenAI, Ollama, llama.cpp, vLLM, …),
through the official `openai` SDK, streaming text and deciding actions with tool calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from openai import AsyncOpenAI, AsyncStream

from secretary.conversation.brain import BrainEvent, BrainRequest, Decision, Finished, Intent, TextDelta
from secretary.knowledge import grounding

OPERATOR = "operator"


def system_prompt(request: BrainRequest) -> str:
    config = request.config
    lines = [
        f"You are {config.name}, the telephone secretary" + (f" of {config.company}." if config.company else "."),
        "You are speaking on the phone: answer in one to three short, plain sentences. No lists, no markdown,"
        " no emojis. Spell out what a caller should hear.",
        "Use the tools to transfer the call, take a message or end the call; never invent extensions,"
        " names or facts that are not given below. If you don't know, say so and offer a transfer.",
    ]
    if config.instructions:
        lines.append("Instructions from the company: " + config.instructions)
    if config.business_hours is not None:
        now = config.business_hours.is_open(request.now)
        lines.append(config.business_hours.describe() + (" It is open now." if now else " It is closed now."))
    if config.directory:
        lines.append("People and departments you can transfer to:")
        lines.extend(
            f"- {t.name}"
            + (f" (also: {', '.join(t.aliases)})" if t.aliases else "")
            + (f": {t.description}" if t.description else "")
            for t in config.directory
        )
    if config.faq:
        lines.append("Frequently asked questions:")
        lines.extend(f"- Q: {f.question} A: {f.answer}" for f in config.faq)
    passages = grounding.supported(request.caller_text, request.knowledge or (), config.language)
    if passages:  # only those that answer the question: a merely close one invites a made-up answer
        lines.append("Passages from the company's documents (cite nothing else):")
        lines.extend(f"[{c.source}] {c.text}" for c in passages)
    return "\n".join(lines)


def tool_schemas(request: BrainRequest) -> list[dict[str, Any]]:
    names = [t.name for t in request.config.directory] + [OPERATOR]
    return [
        {
            "type": "function",
            "function": {
                "name": "transfer_call",
                "description": "Put the caller through to a person or department of the directory, or to the"
                " operator (a human receptionist). Say a short sentence first.",
                "parameters": {
                    "type": "object",
                    "properties": {"target": {"type": "string", "enum": names}},
                    "required": ["target"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "take_message",
                "description": "The caller wants to leave a message; it is recorded after your sentence.",
                "parameters": {"type": "object", "properties": {}},
            },
        },
        {
            "type": "function",
            "function": {
                "name": "end_call",
                "description": "The caller is done: say goodbye, then the call is ended.",
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]


def decision_from_tool(name: str, arguments: str) -> Decision | None:
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        args = {}
    if not isinstance(args, dict):
        args = {}
    if name == "transfer_call":
        target = str(args.get("target", "")).strip()
        if not target or target.casefold() == OPERATOR:
            return Decision(Intent.OPERATOR)
        return Decision(Intent.TRANSFER, target)
    if name == "take_message":
        return Decision(Intent.TAKE_MESSAGE)
    if name == "end_call":
        return Decision(Intent.HANGUP)
    return None


def chat_messages(request: BrainRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt(request)}]
    messages.extend({"role": m.role, "content": m.content} for m in request.history)
    messages.append({"role": "user", "content": request.caller_text or "(the caller said nothing)"})
    return messages


def _tokens(chunk: Any) -> tuple[int, int] | None:
    """Token usage from a chunk: OpenAI-style `usage` (with `stream_options.include_usage`), or Groq's
    `x_groq.usage`."""
    usage = getattr(chunk, "usage", None)
    if usage is None:
        usage = getattr(getattr(chunk, "x_groq", None), "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


async def brain_events(name: str, chunks: AsyncIterator[Any]) -> AsyncIterator[BrainEvent]:
    """Chat-completion chunks (any OpenAI-shaped SDK) → text deltas, at most one decision, `Finished`."""
    calls: dict[int, list[str]] = {}
    prompt_tokens = completion_tokens = 0
    async for chunk in chunks:
        tokens = _tokens(chunk)
        if tokens is not None:
            prompt_tokens, completion_tokens = tokens
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            yield TextDelta(delta.content)
        for call in delta.tool_calls or []:
            name_args = calls.setdefault(call.index, ["", ""])
            if call.function is not None:
                name_args[0] += call.function.name or ""
                name_args[1] += call.function.arguments or ""
    for tool, arguments in calls.values():
        decision = decision_from_tool(tool, arguments)
        if decision is not None:
            yield decision
            break
    yield Finished(name, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)


class OpenAiCompatibleBrain:
    """`name` says which provider it is (`openai`, `ollama`, …), for call records and logs.
    `stream_usage` asks for token counts in the stream (`stream_options`); turn it off for a server that
    rejects the option."""

    def __init__(
        self,
        name: str,
        client: AsyncOpenAI,
        model: str,
        temperature: float = 0.3,
        *,
        max_tokens: int = 300,
        stream_usage: bool = True,
    ) -> None:
        self.name = name
        self._client = client
        self._model = model
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._stream_usage = stream_usage

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if self._stream_usage else {}
        stream = await self._client.chat.completions.create(
            model=self._model,
            messages=chat_messages(request),  # type: ignore[arg-type]
            tools=tool_schemas(request),  # type: ignore[arg-type]
            temperature=self._temperature,
            max_tokens=self._max_tokens,
            stream=True,
            **extra,
        )
        assert isinstance(stream, AsyncStream)
        try:
            async for event in brain_events(self.name, stream):
                yield event
        finally:
            await stream.close()

    async def probe(self) -> None:
        await self._client.models.list()
