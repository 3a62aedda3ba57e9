"""What the fake speech-to-speech servers (ElevenLabs Conversational AI, Gemini Live) share: an energy VAD on
the caller's audio in audio time, the "model" (a small policy over what Whisper heard), and the faults.

The policy answers from the transcript: a question about the location gets `LOCATED`, a directory name a
`transfer_call`, "message" a `take_message`; anything else "Sorry, could you say that again?". A test may give
a fake its own policy (e.g. one that calls `lookup_knowledge`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from secretary.speech.audio import Pcm

LOCATED = "We are at 100 Main Street in Springfield, next to the train station. Parking is behind the building."
PARKING = "Yes, there is free parking behind the building."
AGAIN = "Sorry, could you say that again?"
SPEECH_RMS = 500.0
START_MS = 60
END_MS = 500


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class CallTool:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Policy = Callable[[str], Say | CallTool]


def spoken(output: dict[str, Any], otherwise: str = "Done.") -> str:
    """What the "model" says once a tool answered: the decision's sentence, or the best passage a
    `lookup_knowledge` found (a real model would word it itself)."""
    passages = output.get("passages") or []
    return str(output.get("say") or (passages[0] if passages else "") or otherwise)


def answer(heard: str) -> Say | CallTool:
    text = heard.lower()
    if "billing" in text:
        return CallTool("transfer_call", {"target": "Billing"})
    if "message" in text:
        return CallTool("take_message")
    if "parking" in text:
        return Say(PARKING)
    if "located" in text or "where" in text:
        return Say(LOCATED)
    return Say(AGAIN)


class CallerEars:
    """Energy VAD over the caller's audio: `feed` returns "started", the finished utterance, or None."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.speaking = False
        self._loud_ms = 0.0
        self._quiet_ms = 0.0
        self._utterance = bytearray()

    def feed(self, pcm: bytes) -> str | Pcm | None:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return None
        ms = samples.size / self.rate * 1000
        loud = float(np.sqrt(np.mean(samples * samples))) > SPEECH_RMS
        if loud:
            self._loud_ms += ms
            self._quiet_ms = 0.0
        else:
            self._quiet_ms += ms
            if not self.speaking:
                self._loud_ms = 0.0
                self._utterance.clear()
        if self.speaking or self._loud_ms:
            self._utterance += pcm
        if not self.speaking and self._loud_ms >= START_MS:
            self.speaking = True
            return "started"
        if self.speaking and self._quiet_ms >= END_MS:
            self.speaking, self._loud_ms = False, 0.0
            utterance = Pcm(bytes(self._utterance), self.rate)
            self._utterance.clear()
            return utterance
        return None


def chunks(data: bytes, piece: int) -> list[bytes]:
    piece -= piece % 2
    return [data[i : i + piece] for i in range(0, len(data), max(2, piece))]
