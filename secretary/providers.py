"""The provider factory: builds a domain's STT, TTS and brain chains from its `ProviderChains`.

Every chain ends in the local engine of its kind (Whisper, Piper, the front desk), appended if the admin
did not list it, so a domain with only cloud providers still answers when they all fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from openai import AsyncOpenAI

from secretary.conversation.brain import Brain
from secretary.conversation.brain_chain import BrainChain, Deadlines
from secretary.conversation.front_desk import FrontDesk
from secretary.conversation.llm_brain import OpenAiCompatibleBrain
from secretary.settings import Settings
from secretary.speech.chains import SttChain, TtsChain
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.interfaces import SpeechToText, TextToSpeech
from secretary.speech.local_engines import LocalModels, PiperTts, WhisperStt
from secretary.tenants.config import ProviderSpec, SecretaryConfig

log = structlog.get_logger(__name__)
T = TypeVar("T")

OPENAI_COMPATIBLE = {"openai", "ollama", "openai_compatible", "llamacpp", "vllm"}
_DEFAULT_BASE_URLS = {"ollama": "http://127.0.0.1:11434/v1"}


class UnknownProvider(ValueError):
    pass


class ProviderFactory:
    def __init__(self, settings: Settings, models: LocalModels, pool: CpuPool) -> None:
        self._settings = settings
        self._pool = pool
        self._whisper = WhisperStt(models, pool, settings.engines.whisper_beam_size)
        self._piper = PiperTts(models, pool)
        self._local_stt: SpeechToText = self._whisper
        self._local_tts: TextToSpeech = self._piper
        self._front_desk: Brain = FrontDesk()
        self._clients: dict[tuple[str, str], AsyncOpenAI] = {}

    @property
    def local_stt(self) -> WhisperStt:
        return self._whisper

    @property
    def local_tts(self) -> PiperTts:
        return self._piper

    def stt(self, config: SecretaryConfig) -> SpeechToText:
        engines = self._build(config.providers.stt, self._stt_engine, self._local_stt)
        return engines[0] if len(engines) == 1 else SttChain(engines, deadline_s=10.0)

    def tts(self, config: SecretaryConfig) -> TextToSpeech:
        engines = self._build(config.providers.tts, self._tts_engine, self._local_tts)
        return engines[0] if len(engines) == 1 else TtsChain(engines, first_audio_deadline_s=3.0)

    def brain(self, config: SecretaryConfig) -> Brain:
        brains = self._build(config.providers.brain, self._brain, self._front_desk)
        if len(brains) == 1:
            return brains[0]
        llm = self._settings.llm
        return BrainChain(
            brains, Deadlines(first_event_s=llm.first_token_deadline_s, stall_s=3.0, total_s=llm.total_deadline_s)
        )

    @staticmethod
    def _build(specs: list[ProviderSpec], make: Callable[[ProviderSpec], T], local: T) -> list[T]:
        engines: list[T] = []
        for spec in specs:
            try:
                engine = make(spec)
            except UnknownProvider as exc:
                log.warning("provider_skipped", provider=spec.name, reason=str(exc))
                continue
            if engine not in engines:
                engines.append(engine)
        if local not in engines:
            engines.append(local)
        return engines

    def _stt_engine(self, spec: ProviderSpec) -> SpeechToText:
        if spec.name in ("whisper", "local"):
            return self._whisper
        raise UnknownProvider(f"no speech-to-text provider named {spec.name!r}")

    def _tts_engine(self, spec: ProviderSpec) -> TextToSpeech:
        if spec.name in ("piper", "local"):
            return self._piper
        raise UnknownProvider(f"no text-to-speech provider named {spec.name!r}")

    def _brain(self, spec: ProviderSpec) -> Brain:
        if spec.name in ("front_desk", "local"):
            return self._front_desk
        if spec.name in OPENAI_COMPATIBLE:
            llm = self._settings.llm
            base_url = spec.base_url or _DEFAULT_BASE_URLS.get(spec.name) or llm.base_url
            key = spec.api_key_value() or ""
            if not key and llm.api_key is not None:
                key = llm.api_key.get_secret_value()
            client_key = (base_url or "", key)
            client = self._clients.get(client_key)
            if client is None:
                client = AsyncOpenAI(
                    base_url=base_url, api_key=key or "not-needed", max_retries=0, timeout=llm.total_deadline_s
                )
                self._clients[client_key] = client
            return OpenAiCompatibleBrain(spec.name, client, spec.model or llm.model)
        raise UnknownProvider(f"no brain named {spec.name!r}")

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
