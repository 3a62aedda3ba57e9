"""An LLM brain over any OpenAI-compatible chat-completions server (OpenAI, Ollama, llama.cpp, vLLM, …),
through the official `openai` SDK, streaming text and deciding actions with tool calls."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from openai import AsyncOpenAI, AsyncStream

from secretary.conversation.brain import (
    BrainEvent,
    BrainRequest,
    Decision,
    Finished,
    Intent,
    ReplyWithheld,
    TextDelta,
)
from secretary.knowledge import grounding

OPERATOR = "operator"


DIRECTORY_HEADING = "People and departments you can transfer to:"
FAQ_HEADING = "Frequently asked questions:"
PASSAGES_HEADING = "Passages from the company's documents (cite nothing else):"


def rules(request: BrainRequest) -> list[str]:
    """The prompt's own instructions (not the company's facts): what a caller must never hear read out."""
    config = request.config
    return [
        f"You are {config.name}, the telephone secretary" + (f" of {config.company}." if config.company else "."),
        "You are speaking on the phone: answer in one to three short, plain sentences. No lists, no markdown,"
        " no emojis. Spell out what a caller should hear.",
        "Use the tools to transfer the call, take a message or end the call; never invent extensions,"
        " names or facts that are not given below. If you don't know, say so and offer a transfer.",
    ]


def system_prompt(request: BrainRequest) -> str:
    config = request.config
    lines = rules(request)
    if config.instructions:
        lines.append("Instructions from the company: " + config.instructions)
    if config.business_hours is not None:
        now = config.business_hours.is_open(request.now)
        lines.append(config.business_hours.describe() + (" It is open now." if now else " It is closed now."))
    if config.directory:
        lines.append(DIRECTORY_HEADING)
        lines.extend(
            f"- {t.name}"
            + (f" (also: {', '.join(t.aliases)})" if t.aliases else "")
            + (f": {t.description}" if t.description else "")
            for t in config.directory
        )
    if config.faq:
        lines.append(FAQ_HEADING)
        lines.extend(f"- Q: {f.question} A: {f.answer}" for f in config.faq)
    passages = grounding.supported(request.caller_text, request.knowledge or (), config.language)
    if passages:  # only those that answer the question: a merely close one invites a made-up answer
        lines.append(PASSAGES_HEADING)
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


def conversation_messages(request: BrainRequest) -> list[dict[str, Any]]:
    """The call so far and the caller's new words, without the system prompt."""
    messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in request.history]
    messages.append({"role": "user", "content": request.caller_text or "(the caller said nothing)"})
    return messages


def chat_messages(request: BrainRequest, system: str) -> list[dict[str, Any]]:
    """`system`: the request's `system_prompt`, made once per request (the reply guard reads it too)."""
    return [{"role": "system", "content": system}, *conversation_messages(request)]


# -- the reply guard --------------------------------------------------------------------------------------

LEAK_WORDS = 8  # this many words in a row of the prompt's own instructions: the reply is reading them out
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# A number worth checking: one with three digits or more (a price, an extension, a phone number, 8:30), or one
# said as money or a share. Small bare numbers ("2 doctors", "9 AM") are left alone.
_NUMBER = re.compile(r"\d[\d,]*(?:[.:]\d+)*")
_CURRENCY_BEFORE = re.compile(r"[$£€¥₹]\s*$")
_CURRENCY_AFTER = re.compile(r"^\s*(?:dollars?|pounds?|euros?|cents?|pence|quid|bucks|percent|%|usd|gbp|eur)\b", re.I)


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


def _normal(number: str) -> str:
    """8,500 → 8500; 08:30 → 8:30; 12.50 stays."""
    parts = re.split(r"([.:])", number.replace(",", ""))
    return "".join(p if p in ".:" else (p.lstrip("0") or "0") for p in parts)


def _spellings(number: str) -> set[str]:
    """A time may be said on either clock: 17:30 is 5:30 and the reverse."""
    found = {number}
    hour, sep, minutes = number.partition(":")
    if sep and hour.isdigit():
        h = int(hour)
        found |= {f"{h + 12}:{minutes}" if h < 12 else f"{h - 12}:{minutes}"}
    return found


def numbers_in(text: str) -> set[str]:
    return {_normal(m.group(0).rstrip(",")) for m in _NUMBER.finditer(text)}


def _checked_numbers(text: str, final: bool) -> Iterable[str]:
    """The numbers to check; mid-stream not one at the very end (or before a lone separator), which may go
    on: a model streams "120" as "1", "2", "0", and "12.50" as "12", ".", "50". A sentence is complete only
    with the space after its full stop, so a number is judged before its sentence can be spoken."""
    for m in _NUMBER.finditer(text):
        if not final and text[m.end() :] in ("", ".", ",", ":"):
            continue
        raw = m.group(0).rstrip(",")
        digits = sum(c.isdigit() for c in raw)
        money = bool(_CURRENCY_BEFORE.search(text[: m.start()]) or _CURRENCY_AFTER.match(text[m.end() :]))
        if digits >= 3 or money:
            yield _normal(raw)


class ReplyGuard:
    """Checks a reply as it streams, before each piece is passed on: `ReplyWithheld` when it reads out the
    prompt's instructions (a small model may recite its system prompt) or states a number — a price, an
    extension, a phone number, a time with minutes — that neither the prompt, the call so far nor the
    caller's words hold (a made-up fact). The consumer speaks whole sentences only, and a sentence ends with
    the piece that brings its full stop, so a withheld sentence is never heard; the chain's next brain (the
    front desk) answers instead."""

    def __init__(self, instructions: Iterable[str], grounds: Iterable[str]) -> None:
        words = [w for line in instructions for w in _WORD.findall(line.casefold())]
        self._instructions = _shingles(words, LEAK_WORDS)
        self._known = {n for text in grounds for number in numbers_in(text) for n in _spellings(number)}
        self.text = ""

    @classmethod
    def for_request(cls, request: BrainRequest, system: str) -> ReplyGuard:
        """`system`: the prompt the model was given (`system_prompt(request)`)."""
        grounds = [system, request.caller_text, *(m.content for m in request.history)]
        return cls(rules(request), grounds)

    def problem(self, text: str, final: bool = True) -> str | None:
        words = _WORD.findall(text.casefold())
        if _shingles(words, LEAK_WORDS) & self._instructions:
            return "the reply read out the prompt's instructions"
        unknown = [n for n in _checked_numbers(text, final) if n not in self._known]
        if unknown:
            return f"the reply stated a number the facts don't hold ({unknown[0]})"
        return None

    def feed(self, piece: str) -> None:
        """Raises `ReplyWithheld` when the reply so far, with `piece`, must not be said."""
        problem = self.problem(self.text + piece, final=False)
        if problem is not None:
            raise ReplyWithheld(problem)
        self.text += piece

    def finish(self) -> None:
        """The whole reply, its last number included (a reply may end without a full stop)."""
        problem = self.problem(self.text)
        if problem is not None:
            raise ReplyWithheld(problem)


def _tokens(chunk: Any) -> tuple[int, int] | None:
    """Token usage from a chunk: OpenAI-style `usage` (with `stream_options.include_usage`), or Groq's
    `x_groq.usage`."""
    usage = getattr(chunk, "usage", None)
    if usage is None:
        usage = getattr(getattr(chunk, "x_groq", None), "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def written_tool_calls(text: str) -> list[tuple[str, str]] | None:
    """A tool call a small model wrote as text instead of sending it (`{"name": "transfer_call", "arguments":
    {...}}`, one or several, bare or in `<tool_call>` tags as Qwen's template shows them, or in doubled
    braces): the calls, or None when `text` is not one."""
    body = re.sub(r"</?tool_call>|```(?:json)?", " ", text).strip()
    calls: list[tuple[str, str]] = []
    decoder = json.JSONDecoder()
    while body:
        body = re.sub(r"^\{+(?=\{)", "", body)  # "{{...}}": a template's escaped braces, copied (Qwen 1.5B)
        try:
            value, end = decoder.raw_decode(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return None
        arguments = value.get("arguments", value.get("parameters", {}))
        calls.append((value["name"], arguments if isinstance(arguments, str) else json.dumps(arguments)))
        body = body[end:].lstrip(" \n,;}")
    return calls or None


async def brain_events(
    name: str, chunks: AsyncIterator[Any], guard: ReplyGuard | None = None
) -> AsyncIterator[BrainEvent]:
    """Chat-completion chunks (any OpenAI-shaped SDK) → text deltas, at most one decision, `Finished`;
    each delta passes `guard` first (a `ReplyWithheld` ends the stream). Text that opens like JSON or a
    `<tool_call>` tag is held back, never spoken: at the end it is a tool call written out (the decision), or
    the reply is withheld."""
    calls: dict[int, list[str]] = {}
    prompt_tokens = completion_tokens = 0
    said = ""
    held: str | None = None  # text that may be a written tool call
    async for chunk in chunks:
        tokens = _tokens(chunk)
        if tokens is not None:
            prompt_tokens, completion_tokens = tokens
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            if held is None and not said.strip() and (said + delta.content).lstrip().startswith(("{", "<", "`")):
                held = said
            if held is not None:
                held += delta.content
            else:
                if guard is not None:
                    guard.feed(delta.content)
                said += delta.content
                yield TextDelta(delta.content)
        for call in delta.tool_calls or []:
            name_args = calls.setdefault(call.index, ["", ""])
            if call.function is not None:
                name_args[0] += call.function.name or ""
                name_args[1] += call.function.arguments or ""
    if guard is not None:
        guard.finish()
    found = [(tool, arguments) for tool, arguments in calls.values()]
    if held is not None and held.strip():
        written = written_tool_calls(held)
        if written is None:
            raise ReplyWithheld("the reply was markup, not speech")
        found += written
    for tool, arguments in found:
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
        system = system_prompt(request)
        stream = await self._client.chat.completions.create(
            model=self._model,
            messages=chat_messages(request, system),  # type: ignore[arg-type]
            tools=tool_schemas(request),  # type: ignore[arg-type]
            temperature=self._temperature,
            max_tokens=self._max_tokens,
            stream=True,
            **extra,
        )
        assert isinstance(stream, AsyncStream)
        try:
            async for event in brain_events(self.name, stream, ReplyGuard.for_request(request, system)):
                yield event
        finally:
            await stream.close()

    async def probe(self) -> None:
        await self._client.models.list()
