"""The caller's message as a cloud engine hears it: their audio from the message prompt on, kept at the call's
rate (capped at the domain's `recording.message_max_seconds`), so the recording goes to the courier with the
provider's transcript (`CallContext.message_held`), as in the turn-based mode."""

from __future__ import annotations

from secretary.speech.audio import Pcm


class MessageAudio:
    def __init__(self, sample_rate: int, max_seconds: int) -> None:
        self._rate = sample_rate
        self._max_bytes = sample_rate * 2 * max_seconds
        self._audio: bytearray | None = None

    def start(self) -> None:
        """The message prompt: from now on the caller's audio is the message."""
        self._audio = bytearray()

    def feed(self, pcm: bytes) -> None:
        audio = self._audio
        if audio is None:
            return
        room = self._max_bytes - len(audio)
        if len(pcm) <= room:
            audio += pcm  # the per-frame path: no slice (a copy) unless the cap cuts this frame
        elif room > 0:
            audio += memoryview(pcm)[:room]

    def take(self) -> Pcm:
        """The message's audio so far; stops keeping more."""
        audio, self._audio = self._audio or bytearray(), None
        return Pcm(bytes(audio), self._rate)
