"""The small interfaces every speech provider implements; the factory builds them from a domain's config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from secretary.speech.audio import Pcm


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    provider: str
    audio_seconds: float


class SpeechToText(Protocol):
    """Turns one utterance into text. `hints` are names worth recognising (directory entries)."""

    name: str

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript: ...


class TextToSpeech(Protocol):
    """Speaks text. `stream` yields audio per sentence as soon as each exists (the realtime path);
    `voice_id` names engine + voice, so cached audio is never reused for another voice."""

    name: str

    @property
    def voice_id(self) -> str: ...

    @property
    def sample_rate(self) -> int: ...

    def stream(self, text: str) -> AsyncIterator[Pcm]: ...

    async def synthesize(self, text: str) -> Pcm: ...
