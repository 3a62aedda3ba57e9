"""Fixed spoken lines (`secretary.calls.prompts`, the greeting, farewells) as audio at a call's rate.

They come from the TTS cache on disk (synthesised once per voice and text), and the last few are kept in
memory at each call rate, so a call start costs no synthesis and, for a busy domain, no disk read either.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import numpy as np

from secretary.runtime import Runtime
from secretary.speech.audio import parse_wav
from secretary.speech.interfaces import TextToSpeech

MEMORY_ENTRIES = 128


class PromptAudio:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._memory: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()

    async def audio(self, tts: TextToSpeech, text: str, sample_rate: int) -> bytes:
        key = (tts.voice_id, text, sample_rate)
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
            return hit
        path, cached = await self._runtime.tts_cache.speak(tts, text)
        self._runtime.metrics.tts_cache.labels("hit" if cached else "miss").inc()
        blob = await asyncio.to_thread(path.read_bytes)
        pcm = parse_wav(blob).resampled(sample_rate).data
        self._memory[key] = pcm
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)
        return pcm


def beep(sample_rate: int, seconds: float = 0.35, hz: float = 880.0) -> bytes:
    """The tone after "leave your message after the tone"."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.02)
    return (np.sin(2 * np.pi * hz * t) * fade * 8000).astype("<i2").tobytes()
