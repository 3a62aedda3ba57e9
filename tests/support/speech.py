"""Real speech for tests: Piper speaks a sentence (deterministically: no generator noise), resampled to the
telephone rate, and Whisper transcribes what the secretary said."""

from __future__ import annotations

from functools import lru_cache

from piper import SynthesisConfig

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
