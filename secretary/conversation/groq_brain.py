"""An LLM brain on Groq through the official `groq` SDK: streaming chat completions with tool calls.

Groq speaks the OpenAI chat-completions shape (at `…/openai/v1`), with its own limits: `n` must be 1 and
there are no logprobs, so neither is ever asked for. Token counts arrive in the last chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from groq import AsyncGroq

from secretary.conversation.brain import BrainEvent, BrainRequest
from secretary.conversation.llm_brain import ReplyGuard, brain_events, chat_messages, system_prompt, tool_schemas


class GroqBrain:
    def __init__(
        self, client: AsyncGroq, model: str, temperature: float = 0.3, *, max_tokens: int = 300, name: str = "groq"
    ) -> None:
        self.name = name
        self._client = client
        self._model = model
        self._temperature = temperature
        self._max_tokens = max_tokens

    async def stream(self, request: BrainRequest) -> AsyncIterator[BrainEvent]:
        system = system_prompt(request)
        stream: Any = await self._client.chat.completions.create(
            model=self._model,
            messages=chat_messages(request, system),  # type: ignore[arg-type]
            tools=tool_schemas(request),  # type: ignore[arg-type]
            temperature=self._temperature,
            max_completion_tokens=self._max_tokens,
            stream=True,
        )
        try:
            async for event in brain_events(self.name, stream, ReplyGuard.for_request(request, system)):
                yield event
        finally:
            await stream.close()

    async def probe(self) -> None:
        await self._client.models.list()
