"""The test session's offline models: the real Whisper, Piper and MiniLM, each result made once per test process
for the same input — Piper's audio for a sentence, Whisper's transcript of the same samples, MiniLM's vector
for a text.

Hundreds of calls in the suite say the same few dozen sentences (greetings, prompts, the demo tenant's
answers), hear the same caller recordings (Piper's, deterministic) and embed the same texts (the meaning
model's examples, the demo documents); making each again was most of the suite's CPU. The results are still
the models' own, for that exact input; only the repeat is skipped. The product keeps none of them (a caller's
details are never cached), so this lives here, not in `LocalModels`; `tests/test_minilm.py` checks the model
itself, without this."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np

from secretary.knowledge.minilm import MiniLm
from secretary.speech.local_engines import LocalModels


class _RememberingVoice:
    """A `PiperVoice` whose `synthesize` replays the chunks it made for the same text and config."""

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self._made: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()
        self.config = voice.config

    def synthesize(self, text: str, syn_config: Any = None) -> Iterator[Any]:
        key = (text, repr(syn_config))
        with self._lock:
            chunks = self._made.get(key)
        if chunks is None:
            chunks = list(self._voice.synthesize(text, syn_config=syn_config))
            with self._lock:
                self._made[key] = chunks
        return iter(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._voice, name)


class _RememberingWhisper:
    """A faster-whisper `WhisperModel` whose `transcribe` replays its segments for the same samples and options."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._heard: dict[tuple[bytes, str], tuple[list[Any], Any]] = {}
        self._lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, **options: Any) -> tuple[list[Any], Any]:
        key = (hashlib.sha256(np.ascontiguousarray(samples).tobytes()).digest(), repr(sorted(options.items())))
        with self._lock:
            heard = self._heard.get(key)
        if heard is None:
            segments, info = self._model.transcribe(samples, **options)
            heard = (list(segments), info)
            with self._lock:
                self._heard[key] = heard
        return list(heard[0]), heard[1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class _RememberingMiniLm:
    """A `MiniLm` whose `encode` computes only the texts it has not seen (a row depends on its text alone)."""

    def __init__(self, model: MiniLm) -> None:
        self._model = model
        self._rows: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self.dimensions = model.dimensions

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            rows = self._model.encode(missing, batch_size)
            with self._lock:
                self._rows.update(zip(missing, rows, strict=True))
        with self._lock:
            return np.array([self._rows[t] for t in texts], dtype=np.float32).reshape(len(texts), self.dimensions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class SessionModels(LocalModels):
    def whisper(self) -> Any:
        return self._remembering("_whisper", super().whisper(), _RememberingWhisper)

    def piper(self) -> Any:
        return self._remembering("_piper", super().piper(), _RememberingVoice)

    def minilm(self) -> MiniLm:
        return cast(MiniLm, self._remembering("_minilm", super().minilm(), _RememberingMiniLm))

    def _remembering(self, attribute: str, loaded: Any, wrapper: type[Any]) -> Any:
        """The model `LocalModels` loaded, behind its remembering wrapper (made once, kept in its place)."""
        with self._lock:
            held = getattr(self, attribute)
            if not isinstance(held, wrapper):
                held = wrapper(loaded)
                setattr(self, attribute, held)
            return held
