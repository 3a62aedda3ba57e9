"""The provider factory: builds a domain's STT, TTS and brain chains from its `ProviderChains`.

Every chain ends in the local engine of its kind (Whisper, Piper, the front desk), appended if the admin
did not list it, so a domain with only cloud providers still answers when they all fail. Cloud adapters are
built once per distinct provider entry, key and cache scope and reused by every call; which key an entry gets
(and where it may be sent) is the `CredentialResolver`'s decision, keys are never logged. Whether a tenant's
entry may reach its endpoint at all is the `EndpointPolicy`'s, asked on every build (cached adapters too):
a refused entry is skipped like one that can't be built. One `ProviderHealth`
benches failed providers for every chain in the process.

Provider names, per kind (see the providers table in the README):
  stt:   whisper | deepgram | openai
  brain: front_desk | openai | groq | anthropic | ollama | openai_compatible (also llamacpp, vllm)
  tts:   piper | openai | elevenlabs
  embeddings: minilm | openai (and other OpenAI-compatible servers) | ollama
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from openai import AsyncOpenAI

from secretary.conversation.brain import Brain
from secretary.conversation.brain_chain import BrainChain
from secretary.conversation.front_desk import FrontDesk
from secretary.conversation.llm_brain import OpenAiCompatibleBrain
from secretary.credentials.endpoints import EndpointPolicy, provider_endpoint
from secretary.credentials.resolver import Credential, CredentialResolver
from secretary.deadlines import Deadlines
from secretary.knowledge.embedders import Embedder, GuardedEmbedder, OllamaEmbedder, OpenAiEmbedder
from secretary.observability import Metrics
from secretary.provider_health import ProviderHealth
from secretary.settings import Settings
from secretary.speech.chains import SttChain, SttDeadlines, TtsChain, TtsDeadlines
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.interfaces import SpeechToText, TextToSpeech
from secretary.speech.local_engines import LocalModels, PiperTts, WhisperStt
from secretary.speech.providers.deepgram import DeepgramStt
from secretary.speech.streaming import StreamingSpeechToText
from secretary.tenants.config import ProviderSpec, SecretaryConfig
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)
T = TypeVar("T")

OPENAI_COMPATIBLE = {"openai", "ollama", "openai_compatible", "llamacpp", "vllm"}
_DEFAULT_BASE_URLS = {"ollama": "http://127.0.0.1:11434/v1"}
_NEEDS_KEY = {"openai", "groq", "anthropic", "deepgram", "elevenlabs"}
# An adapter maker: the entry and the key the resolver allowed it.
Maker = Callable[[ProviderSpec, Credential], T]


class UnknownProvider(ValueError):
    """A provider entry that can't be built (unknown name, missing key): skipped with a warning."""


def _option(spec: ProviderSpec, key: str, default: Any) -> Any:
    """An adapter option from the entry's `options`, converted to the default's type."""
    value = spec.options.get(key, default)
    if isinstance(default, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return type(default)(value)


class ProviderFactory:
    def __init__(
        self,
        settings: Settings,
        models: LocalModels,
        pool: CpuPool,
        metrics: Metrics | None = None,
        endpoints: EndpointPolicy | None = None,
    ) -> None:
        self._settings = settings
        self.credentials = CredentialResolver(settings)
        self.endpoints = endpoints or EndpointPolicy(settings)
        self._pool = pool
        self._whisper = WhisperStt(models, pool, settings.engines.whisper_beam_size)
        self._piper = PiperTts(models, pool)
        self._front_desk: Brain = FrontDesk()
        fallback = settings.fallback

        def count_failure(key: str) -> None:
            if metrics is not None:
                kind, name = [*key.split(":"), ""][:2]
                metrics.fallbacks.labels(kind, name).inc()

        self.health = ProviderHealth(
            fallback.cool_down_s, fallback.probe_interval_s, fallback.probe_timeout_s, on_failure=count_failure
        )
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._engines: dict[tuple[str, str], Any] = {}

    @property
    def local_stt(self) -> WhisperStt:
        return self._whisper

    @property
    def local_tts(self) -> PiperTts:
        return self._piper

    def benched(self, kind: str, spec: ProviderSpec, config: SecretaryConfig) -> str | None:
        """Why the domain's entry is benched (None: it is not), by the key its adapter has: only `config`'s own
        entries are asked about, so no other domain's endpoint or key is ever looked at."""
        return self.health.reason(self.credentials.identify(spec, config).health_key(kind, spec))

    # -- chains ----------------------------------------------------------------------------------------------

    def stt(self, config: SecretaryConfig, usage: UsageMeter | None = None) -> SttChain:
        fallback = self._settings.fallback
        local: SpeechToText = self._whisper
        engines = self._build("stt", config, config.providers.stt, self._stt_engine, local)
        deadlines = SttDeadlines(fallback.stt_first_result_s, fallback.stt_hedge_after_s)
        return SttChain(engines, deadlines=deadlines, health=self.health, usage=usage)

    def streaming_stt(self, config: SecretaryConfig) -> StreamingSpeechToText | None:
        """The domain's first healthy streaming STT provider (Deepgram), for the realtime pipeline; None when
        the domain names none (or all are benched): the pipeline then uses its own VAD and `stt()`."""
        for spec in config.providers.stt:
            try:
                engine = self._cached("stt", config, spec, self._stt_engine)
            except (UnknownProvider, ValueError):
                continue
            if isinstance(engine, DeepgramStt) and self.health.available(getattr(engine, "health_key", engine.name)):
                return engine
        return None

    def tts(self, config: SecretaryConfig, usage: UsageMeter | None = None) -> TtsChain:
        fallback = self._settings.fallback
        local: TextToSpeech = self._piper
        engines = self._build("tts", config, config.providers.tts, self._tts_engine, local)
        deadlines = TtsDeadlines(fallback.tts_first_audio_s, fallback.tts_stall_s)
        return TtsChain(engines, deadlines=deadlines, health=self.health, usage=usage)

    def brain(self, config: SecretaryConfig, usage: UsageMeter | None = None) -> BrainChain:
        brains = self._build("brain", config, config.providers.brain, self._brain, self._front_desk)
        llm, fallback = self._settings.llm, self._settings.fallback
        deadlines = Deadlines(
            first_event_s=llm.first_token_deadline_s, stall_s=fallback.brain_stall_s, total_s=llm.total_deadline_s
        )
        hedge = fallback.brain_hedge_after_s
        return BrainChain(brains, deadlines, health=self.health, usage=usage, hedge_after_s=hedge)

    def embedder(self, config: SecretaryConfig, local: Embedder) -> Embedder:
        """The domain's embedder: its first `providers.embeddings` entry that can be built, else `local`."""
        for spec in config.providers.embeddings:
            if spec.name in ("minilm", "local"):
                return local
            try:
                return self._cached("embeddings", config, spec, self._embedder)
            except (UnknownProvider, ValueError) as exc:
                log.warning("provider_skipped", kind="embeddings", provider=spec.name, reason=str(exc))
        return local

    def _embedder(self, spec: ProviderSpec, credential: Credential) -> GuardedEmbedder:
        inner: OpenAiEmbedder | OllamaEmbedder
        if spec.name == "ollama" and not (spec.base_url or "").rstrip("/").endswith("/v1"):
            inner = OllamaEmbedder(spec.base_url or "http://127.0.0.1:11434", spec.model or "nomic-embed-text")
        elif spec.name in OPENAI_COMPATIBLE:
            inner = OpenAiEmbedder(self._openai_client(spec, credential), spec.model or "text-embedding-3-small")
        else:
            raise UnknownProvider(f"no embeddings provider named {spec.name!r}")
        key = f"embeddings:{spec.name}:{spec.base_url or 'default'}:{spec.model or ''}"
        return GuardedEmbedder(inner, self.health, key, self._settings.knowledge.search_timeout_s * 0.75)

    def _build(
        self, kind: str, config: SecretaryConfig, specs: list[ProviderSpec], make: Maker[T], local: T
    ) -> list[T]:
        engines: list[T] = []
        for spec in specs:
            try:
                engine = self._cached(kind, config, spec, make)
            except (UnknownProvider, ValueError) as exc:
                log.warning("provider_skipped", kind=kind, provider=spec.name, reason=str(exc))
                continue
            if engine not in engines:
                engines.append(engine)
        if local in engines:
            engines.remove(local)
        engines.append(local)  # the local engine always closes the chain
        return engines

    def _cached(self, kind: str, config: SecretaryConfig, spec: ProviderSpec, make: Maker[T]) -> T:
        """One adapter per distinct entry, key *and cache scope*: two domains with the same entry but their own
        keys get their own clients (and their own health: one domain's revoked key benches only its adapter),
        and a tenant's endpoint or key never shares an adapter — nor its cached audio — with another domain.
        Raises `EndpointNotAllowed` (a `ValueError`) for an endpoint `config` may not reach."""
        implied = spec.base_url or _DEFAULT_BASE_URLS.get(spec.name)  # Ollama's default is this machine's
        self.endpoints.check(provider_endpoint(kind, spec, implied), config)
        identity = self.credentials.identify(spec, config)
        key = (kind, identity.digest)
        engine: Any = self._engines.get(key)
        if engine is None:
            engine = make(spec, identity.credential)
            if engine not in (self._whisper, self._piper, self._front_desk):
                setattr(engine, "health_key", identity.health_key(kind, spec))  # noqa: B010
                if kind == "tts":
                    # Everything that decides the audio names its cache entries (SECURITY.md, "Caches").
                    engine.voice_id = f"{engine.voice_id}:{identity.digest}"
            self._engines[key] = engine
        return engine  # type: ignore[no-any-return]

    # -- engines ---------------------------------------------------------------------------------------------

    @staticmethod
    def _api_key(spec: ProviderSpec, credential: Credential) -> str:
        if not credential.value and spec.name in _NEEDS_KEY:
            raise UnknownProvider(
                f"{spec.name} needs an API key: none this domain may use (a stored credential, api_key_ref)"
            )
        return credential.value

    def _openai_client(
        self, spec: ProviderSpec, credential: Credential, default_base: str | None = None
    ) -> AsyncOpenAI:
        base_url = spec.base_url or _DEFAULT_BASE_URLS.get(spec.name) or default_base
        key = self._api_key(spec, credential)
        client_key = ("openai", base_url or "", key)
        client: AsyncOpenAI | None = self._clients.get(client_key)
        if client is None:
            # No SDK retries: a failure must reach the chain at once, which falls back instead of waiting.
            client = AsyncOpenAI(
                base_url=base_url,
                api_key=key or "not-needed",
                max_retries=0,
                timeout=self._settings.llm.total_deadline_s,
            )
            self._clients[client_key] = client
        return client

    def _stt_engine(self, spec: ProviderSpec, credential: Credential) -> SpeechToText:
        if spec.name in ("whisper", "local"):
            return self._whisper
        if spec.name == "deepgram":
            return self._deepgram(spec, credential)
        if spec.name in OPENAI_COMPATIBLE:
            from secretary.speech.providers.openai_speech import OpenAiTranscription

            model = spec.model or "gpt-4o-mini-transcribe"
            return OpenAiTranscription(self._openai_client(spec, credential), model, name=spec.name)
        raise UnknownProvider(f"no speech-to-text provider named {spec.name!r}")

    def _deepgram(self, spec: ProviderSpec, credential: Credential) -> SpeechToText:
        from deepgram import AsyncDeepgramClient
        from deepgram.environment import DeepgramClientEnvironment

        key = self._api_key(spec, credential)
        kwargs: dict[str, Any] = {"api_key": key, "timeout": self._settings.fallback.stt_first_result_s}
        if spec.base_url:
            http = spec.base_url.rstrip("/")
            ws = "ws" + http[len("http") :] if http.startswith("http") else http
            kwargs["environment"] = DeepgramClientEnvironment(base=http, production=ws, agent=ws, agent_rest=http)
        fallback = self._settings.fallback
        return DeepgramStt(
            AsyncDeepgramClient(**kwargs),
            model=spec.model or "nova-3",
            encoding=str(_option(spec, "encoding", "linear16")),
            endpointing_ms=int(_option(spec, "endpointing_ms", 300)),
            utterance_end_ms=int(_option(spec, "utterance_end_ms", 1000)),
            keepalive_s=float(_option(spec, "keepalive_s", 4.0)),
            smart_format=bool(_option(spec, "smart_format", True)),
            connect_timeout_s=fallback.stt_first_result_s,
            result_deadlines=Deadlines(
                first_event_s=fallback.stt_first_result_s,
                stall_s=fallback.stt_stall_s,
                total_s=fallback.stt_first_result_s * 4,
            ),
        )

    def _tts_engine(self, spec: ProviderSpec, credential: Credential) -> TextToSpeech:
        if spec.name in ("piper", "local"):
            return self._piper
        if spec.name == "elevenlabs":
            from secretary.speech.providers.elevenlabs import DEFAULT_BASE_URL, ElevenLabsTts

            if not spec.voice:
                raise UnknownProvider("elevenlabs needs a voice (the ElevenLabs voice_id)")
            return ElevenLabsTts(
                self._api_key(spec, credential),
                spec.voice,
                model=spec.model or "eleven_flash_v2_5",
                output_format=str(_option(spec, "output_format", "pcm_16000")),
                base_url=spec.base_url or DEFAULT_BASE_URL,
            )
        if spec.name in OPENAI_COMPATIBLE:
            from secretary.speech.providers.openai_speech import OpenAiSpeech

            instructions = spec.options.get("instructions")
            return OpenAiSpeech(
                self._openai_client(spec, credential),
                spec.model or "gpt-4o-mini-tts",
                spec.voice or "alloy",
                instructions=str(instructions) if instructions else None,
                name=spec.name,
            )
        raise UnknownProvider(f"no text-to-speech provider named {spec.name!r}")

    def _brain(self, spec: ProviderSpec, credential: Credential) -> Brain:
        if spec.name in ("front_desk", "local"):
            return self._front_desk
        llm = self._settings.llm
        temperature = float(_option(spec, "temperature", 0.3))
        max_tokens = int(_option(spec, "max_tokens", 300))
        if spec.name == "groq":
            from groq import AsyncGroq

            from secretary.conversation.groq_brain import GroqBrain

            key = self._api_key(spec, credential)
            client_key = ("groq", spec.base_url or "", key)
            client = self._clients.get(client_key)
            if client is None:
                client = AsyncGroq(api_key=key, base_url=spec.base_url, max_retries=0, timeout=llm.total_deadline_s)
                self._clients[client_key] = client
            return GroqBrain(client, spec.model or "llama-3.3-70b-versatile", temperature, max_tokens=max_tokens)
        if spec.name == "anthropic":
            return self._anthropic_brain(spec, credential, max_tokens)
        if spec.name in OPENAI_COMPATIBLE:
            client = self._openai_client(spec, credential, llm.base_url)
            return OpenAiCompatibleBrain(
                spec.name,
                client,
                spec.model or llm.model,
                temperature,
                max_tokens=max_tokens,
                stream_usage=bool(_option(spec, "stream_usage", True)),
            )
        raise UnknownProvider(f"no brain named {spec.name!r}")

    def _anthropic_brain(self, spec: ProviderSpec, credential: Credential, max_tokens: int) -> Brain:
        from anthropic import AsyncAnthropic

        from secretary.conversation.anthropic_brain import AnthropicBrain

        key = self._api_key(spec, credential)
        client_key = ("anthropic", spec.base_url or "", key)
        client = self._clients.get(client_key)
        if client is None:
            # An explicit key: the SDK then reads no credential of its own from the environment.
            client = AsyncAnthropic(
                api_key=key, base_url=spec.base_url, max_retries=0, timeout=self._settings.llm.total_deadline_s
            )
            self._clients[client_key] = client
        thinking = str(_option(spec, "thinking", "disabled"))  # disabled | adaptive | default (the model's)
        return AnthropicBrain(
            client,
            spec.model or "claude-haiku-4-5",
            max_tokens=max_tokens,
            thinking="adaptive" if thinking == "adaptive" else None if thinking == "default" else "disabled",
        )

    async def close(self) -> None:
        await self.endpoints.close()
        await self.health.close()
        for engine in self._engines.values():
            close = getattr(getattr(engine, "inner", engine), "close", None)
            if close is not None:
                await close()
        for client in self._clients.values():
            await client.close()
