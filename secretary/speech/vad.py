"""Voice activity detection on a live stream: is the caller speaking, window by window?

`SileroVad` runs the Silero v6 ONNX model that faster-whisper ships (accurate on telephone audio, ~140 µs
per 32 ms window, so it runs inline: a thread-pool hop would cost about as much). A level floor keeps faint
line noise and echo from counting as speech however speech-like the model finds them. `EnergyVad` needs no
model: the echo engine and the load benchmark use it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from secretary.speech.audio import StreamResampler

SILERO_RATE = 16000
SILERO_WINDOW = 512  # samples at 16 kHz: 32 ms
SILERO_CONTEXT = 64
HYSTERESIS = 0.15  # once speaking, speech continues down to threshold - 0.15 (Silero's own recommendation)


class VoiceActivityDetector(Protocol):
    """Streaming VAD: feed caller audio (L16 at the call's rate) in any amount; get one decision per
    completed analysis window of `window_ms`, oldest first."""

    window_ms: float

    def feed(self, pcm: bytes) -> list[bool]: ...

    def reset(self) -> None: ...


class SileroVad:
    def __init__(self, session: Any, sample_rate: int, threshold: float = 0.5, min_level_dbfs: float = -40.0) -> None:
        self.window_ms = SILERO_WINDOW / SILERO_RATE * 1000
        self._session = session
        self._rate = sample_rate
        self._threshold = threshold
        self._floor = 10 ** (min_level_dbfs / 10)  # as a mean square of samples in [-1, 1)
        self._input = np.zeros((1, SILERO_CONTEXT + SILERO_WINDOW), dtype=np.float32)
        self._pending = bytearray()
        self.last_probability = 0.0
        self.reset()

    def reset(self) -> None:
        self._resampler = StreamResampler(self._rate, SILERO_RATE)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._input[:] = 0
        self._pending.clear()
        self._speaking = False

    def feed(self, pcm: bytes) -> list[bool]:
        self._pending += self._resampler.process(pcm)
        decisions: list[bool] = []
        window_bytes = 2 * SILERO_WINDOW
        while len(self._pending) >= window_bytes:
            samples = np.frombuffer(self._pending, dtype="<i2", count=SILERO_WINDOW)
            frame = self._input[0]
            frame[:SILERO_CONTEXT] = frame[-SILERO_CONTEXT:]
            np.multiply(samples, 1 / 32768, out=frame[SILERO_CONTEXT:], casting="unsafe")
            del samples  # release the view on the bytearray before resizing it
            del self._pending[:window_bytes]
            window = frame[SILERO_CONTEXT:]
            loud = float(np.dot(window, window)) / SILERO_WINDOW >= self._floor
            out, self._h, self._c = self._session.run(None, {"input": self._input, "h": self._h, "c": self._c})
            probability = float(out.reshape(-1)[0])
            self.last_probability = probability
            limit = self._threshold - HYSTERESIS if self._speaking else self._threshold
            self._speaking = loud and probability >= limit
            decisions.append(self._speaking)
        return decisions


class EnergyVad:
    """Speech = a 20 ms window louder than `min_level_dbfs`. No model, ~2 µs a window; fooled by noise."""

    def __init__(self, sample_rate: int, min_level_dbfs: float = -40.0, window_ms: float = 20.0) -> None:
        self.window_ms = window_ms
        self._window_bytes = 2 * int(sample_rate * window_ms / 1000)
        self._floor = 10 ** (min_level_dbfs / 10) * 32768.0 * 32768.0
        self._pending = bytearray()

    def reset(self) -> None:
        self._pending.clear()

    def feed(self, pcm: bytes) -> list[bool]:
        self._pending += pcm
        decisions: list[bool] = []
        size = self._window_bytes
        while len(self._pending) >= size:
            samples = np.frombuffer(self._pending, dtype="<i2", count=size // 2).astype(np.float32)
            decisions.append(float(np.dot(samples, samples)) / (size // 2) >= self._floor)
            del self._pending[:size]
        return decisions
