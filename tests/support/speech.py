"""Real speech for tests: Piper speaks a sentence (deterministically: no generator noise), resampled to the
telephone rate, and Whisper transcribes what the secretary said."""

from __future__ import annotations

import asyncio
import contextlib
from functools import lru_cache

from piper import SynthesisConfig

from freeswitch.stream_sim import SimulatedCall
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels

_DETERMINISTIC = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


class Speech:
    def __init__(self, models: LocalModels) -> None:
        self.models = models

    @lru_cache(maxsize=64)  # noqa: B019 - one Speech per test session
    def say(self, text: str, rate: int = 8000) -> Pcm:
        voice = self.models.piper()
        audio = b"".join(c.audio_int16_bytes for c in voice.synthesize(text, syn_config=_DETERMINISTIC))
        return Pcm(audio, voice.config.sample_rate).resampled(rate)

    def transcribe(self, pcm: Pcm) -> str:
        segments, _ = self.models.whisper().transcribe(
            pcm.resampled(16000).to_float32(), language="en", beam_size=1, condition_on_previous_text=False
        )
        return " ".join(s.text.strip() for s in segments).strip()

    async def hear(self, pcm: Pcm) -> str:
        """`transcribe` off the event loop: the bridge, the simulator and the fake providers under test run
        on that loop, and a second of Whisper there would be a second of their timers and audio stalled."""
        return await asyncio.to_thread(self.transcribe, pcm)

    async def heard_until(self, call: SimulatedCall, since_ms: int, wanted: str, timeout_s: float = 40.0) -> str:
        """What the caller heard since `since_ms` (lower case), once the secretary has said `wanted` and gone
        quiet, or the time is up: a filler, an apology and the answer may be far apart on a loaded machine,
        and that gap is not what a test of the call's course is about (bench/fallback.py times it)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s
        while True:
            await call.secretary_silent(quiet_ms=1500)
            heard = (await self.hear(Pcm(call.heard().data[2 * call.rate * since_ms // 1000 :], call.rate))).lower()
            if wanted in heard or loop.time() >= give_up or call.closed.is_set():
                return heard
            with contextlib.suppress(TimeoutError):
                await call.secretary_speaks(after_ms=call.media_ms, timeout_s=give_up - loop.time())
