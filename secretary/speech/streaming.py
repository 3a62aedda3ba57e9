"""The streaming speech-to-text interface: feed a call's audio frames as they arrive, read recognition
events as they happen. End of turn comes from the provider (`EndOfUtterance`) instead of our own VAD.

`StreamingSpeechToText.open` starts one stream per call (or per utterance); the realtime pipeline feeds it
20 ms frames and reads `events()`. Streams keep themselves alive while the caller is silent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The provider heard speech begin (barge-in can start here, before any words are known)."""

    at_s: float


@dataclass(frozen=True, slots=True)
class Interim:
    """A provisional transcript of the words since the last final segment; it may still change."""

    text: str


@dataclass(frozen=True, slots=True)
class FinalSegment:
    """A stretch of speech whose transcript will not change any more."""

    text: str


@dataclass(frozen=True, slots=True)
class EndOfUtterance:
    """The caller finished speaking: `text` is everything said since the previous end of utterance."""

    text: str


SttEvent = SpeechStarted | Interim | FinalSegment | EndOfUtterance


class SttStream(Protocol):
    sample_rate: int

    async def send(self, pcm: bytes) -> None:
        """Mono s16le frames at `sample_rate`."""

    def events(self) -> AsyncIterator[SttEvent]:
        """Recognition events until the stream ends; raises `ProviderFailed` if the provider fails."""

    async def finish(self) -> None:
        """No more audio: the provider flushes what it holds, then `events()` ends."""

    async def close(self) -> None:
        """Abandon the stream at once (idempotent)."""


class StreamingSpeechToText(Protocol):
    name: str

    async def open(self, sample_rate: int, language: str, hints: Sequence[str] = ()) -> SttStream: ...
