"""Which realtime engine serves a call: the domain's `providers.realtime` chain (or the one engine
`bridge.engine` forces). Cloud engines in the chain are tried in order and the offline pipeline closes it
(`EngineChain`: a call that loses a cloud engine mid-call goes on with the next); a domain on the pipeline
alone gets the pipeline itself. Engines register a builder by name, so another provider plugs in without
touching the session; a builder that can't serve the call (no key…) raises `EngineUnavailable` and is skipped,
as is an entry whose endpoint the domain may not reach (`EndpointPolicy`, asked here for every engine).

Names: `pipeline` (`local`), `openai_realtime` (`openai`), `elevenlabs_convai` (`elevenlabs`),
`gemini_live` (`gemini`), `echo`."""

from __future__ import annotations

import asyncio

import structlog

from bridge.engines.base import CloudEngine, RealtimeEngine
from bridge.engines.chain import EngineChain
from bridge.engines.echo import EchoEngine
from bridge.engines.elevenlabs_convai import ElevenLabsConvaiEngine
from bridge.engines.gemini_live import GeminiLiveEngine
from bridge.engines.openai_realtime import OpenAiRealtimeEngine
from bridge.engines.pipeline import PipelineEngine
from bridge.engines.request import EngineBuilder, EngineRequest, EngineUnavailable
from bridge.prompts import PromptAudio
from secretary.credentials.endpoints import EndpointNotAllowed, provider_endpoint
from secretary.runtime import Runtime
from secretary.tenants.config import ProviderSpec, SecretaryConfig

log = structlog.get_logger(__name__)


def _pipeline(request: EngineRequest) -> RealtimeEngine:
    return PipelineEngine(request.runtime, request.config, request.sample_rate, request.prompts)


def _echo(request: EngineRequest) -> RealtimeEngine:
    return EchoEngine(request.sample_rate)


def _openai(request: EngineRequest) -> RealtimeEngine:
    return OpenAiRealtimeEngine.from_request(request)


def _elevenlabs(request: EngineRequest) -> RealtimeEngine:
    return ElevenLabsConvaiEngine.from_request(request)


def _gemini(request: EngineRequest) -> RealtimeEngine:
    return GeminiLiveEngine.from_request(request)


LOCAL = {"pipeline", "local"}


class EngineRegistry:
    def __init__(self) -> None:
        self._builders: dict[str, EngineBuilder] = {
            "pipeline": _pipeline,
            "local": _pipeline,
            "echo": _echo,
            "openai": _openai,
            "openai_realtime": _openai,
            "elevenlabs": _elevenlabs,
            "elevenlabs_convai": _elevenlabs,
            "gemini": _gemini,
            "gemini_live": _gemini,
        }

    def register(self, name: str, builder: EngineBuilder) -> None:
        self._builders[name] = builder

    @property
    def names(self) -> list[str]:
        return sorted(self._builders)

    def build(
        self, runtime: Runtime, config: SecretaryConfig, sample_rate: int, prompts: PromptAudio
    ) -> RealtimeEngine:
        forced = runtime.settings.bridge.engine
        if forced:
            engine = self._build_one(ProviderSpec(name=forced), runtime, config, sample_rate, prompts)
            pipeline = EngineRequest(runtime, config, ProviderSpec(name="pipeline"), sample_rate, prompts)
            return engine or _pipeline(pipeline)
        cloud: list[CloudEngine] = []
        for spec in config.providers.realtime:
            if spec.name in LOCAL:
                break  # the pipeline closes the chain: entries after it are never reached
            engine = self._build_one(spec, runtime, config, sample_rate, prompts)
            if engine is None:
                continue
            if not isinstance(getattr(engine, "connected", None), asyncio.Event):
                if not cloud:
                    return engine  # a local engine of its own (echo): no chain
                log.warning("realtime_engine_not_chainable", engine=spec.name)
                continue
            cloud.append(engine)  # type: ignore[arg-type]
        pipeline_request = EngineRequest(runtime, config, ProviderSpec(name="pipeline"), sample_rate, prompts)
        if not cloud:
            return _pipeline(pipeline_request)
        return EngineChain(runtime, config, sample_rate, prompts, cloud)

    def _build_one(
        self, spec: ProviderSpec, runtime: Runtime, config: SecretaryConfig, sample_rate: int, prompts: PromptAudio
    ) -> RealtimeEngine | None:
        builder = self._builders.get(spec.name)
        if builder is None:
            log.warning("realtime_engine_unknown", engine=spec.name)
            return None
        try:
            runtime.providers.endpoints.check(provider_endpoint("realtime", spec), config)
            return builder(EngineRequest(runtime, config, spec, sample_rate, prompts))
        except (EngineUnavailable, EndpointNotAllowed) as exc:
            log.warning("realtime_engine_unavailable", engine=spec.name, reason=str(exc))
            return None
