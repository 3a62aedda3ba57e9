"""A cloud engine's audio format on the wire (`pcm_16000`, `ulaw_8000`, …) against the call's own L16 rate.

Conversions happen only where the formats differ: an 8 kHz call to an engine that speaks `ulaw_8000` is only
G.711-coded (no resampling), a 16 kHz call to a `pcm_16000` engine passes through untouched.
"""

from __future__ import annotations

import re

from secretary.speech.audio import StreamResampler, ulaw_decode, ulaw_encode

_FORMAT = re.compile(r"^(pcm|ulaw)_(\d{4,5})$")


class WireAudio:
    def __init__(self, wire_format: str, call_rate: int) -> None:
        match = _FORMAT.match(wire_format)
        if match is None:
            raise ValueError(f"unsupported audio format {wire_format!r} (pcm_<rate> or ulaw_8000)")
        self.format = wire_format
        self.ulaw = match.group(1) == "ulaw"
        self.rate = int(match.group(2))
        if self.ulaw and self.rate != 8000:
            raise ValueError("µ-law is 8 kHz only")
        self._up = StreamResampler(call_rate, self.rate)
        self._down = StreamResampler(self.rate, call_rate)

    def outbound(self, pcm: bytes) -> bytes:
        """The caller's L16 at the call rate → the wire."""
        data = self._up.process(pcm)
        return ulaw_encode(data) if self.ulaw else data

    def inbound(self, data: bytes) -> bytes:
        """The wire → L16 at the call rate."""
        if self.ulaw:
            data = ulaw_decode(data)
        elif len(data) % 2:
            data = data[:-1]
        return self._down.process(data)

    def seconds(self, data: bytes) -> float:
        """Duration of wire bytes."""
        return len(data) / (1 if self.ulaw else 2) / self.rate
