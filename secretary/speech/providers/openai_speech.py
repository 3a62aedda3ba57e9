"""OpenAI speech through the official `openai` SDK: transcription (`/v1/audio/transcriptions`) and speech
(`/v1/audio/speech`, streamed as raw 24 kHz PCM so playback starts with the first bytes).

Any OpenAI-compatible speech server works too (a `base_url` in the provider entry).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from openai import AsyncOpenAI

from secretary.errors import ProviderFailed
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.interfaces import Transcript

OPENAI_PCM_RATE = 24000  # `response_format="pcm"`: 24 kHz, 16-bit signed little-endian, mono
CHUNK_BYTES = 4800  # 100 ms


class OpenAiTranscription:
    """`SpeechToText` over the transcriptions endpoint; `hints` (directory names) go in as the prompt."""

    def __init__(self, client: AsyncOpenAI, model: str = "gpt-4o-mini-transcribe", name: str = "openai") -> None:
        self.name = name
        self._client = client
        self._model = model

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript:
        extra: dict[str, Any] = {}
        if hints:
            extra["prompt"] = "Names you may hear: " + ", ".join(dict.fromkeys(hints)) + "."
        result = await self._client.audio.transcriptions.create(
            model=self._model,
            file=("utterance.wav", wav_bytes(audio), "audio/wav"),
            language=language.split("-")[0],
            response_format="json",
            **extra,
        )
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise ProviderFailed("the transcription response has no text")
        return Transcript(text.strip(), self.name, audio.duration_s)

    async def probe(self) -> None:
        await self._client.models.list()


class OpenAiSpeech:
    """`TextToSpeech` over the speech endpoint, streamed."""

    sample_rate = OPENAI_PCM_RATE

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.voice_id = f"{name}:{model}:{voice}"
        self._client = client
        self._model = model
        self._voice = voice
        self._instructions = instructions

    async def synthesize(self, text: str) -> Pcm:
        parts = [pcm async for pcm in self.stream(text)]
        return Pcm(b"".join(p.data for p in parts), self.sample_rate)

    async def stream(self, text: str) -> AsyncIterator[Pcm]:
        extra: dict[str, Any] = {"instructions": self._instructions} if self._instructions else {}
        async with self._client.audio.speech.with_streaming_response.create(
            model=self._model, voice=self._voice, input=text, response_format="pcm", **extra
        ) as response:
            content_type = response.headers.get("content-type", "")
            if content_type.startswith(("application/json", "text/")):
                raise ProviderFailed(f"the speech endpoint answered {content_type!r} instead of audio")
            carry = b""
            async for chunk in response.iter_bytes(CHUNK_BYTES):
                data = carry + chunk
                cut = len(data) - len(data) % 2
                carry = data[cut:]
                if cut:
                    yield Pcm(data[:cut], self.sample_rate)

    async def probe(self) -> None:
        await self._client.models.list()
