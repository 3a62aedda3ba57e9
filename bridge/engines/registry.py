"""Which realtime engine serves a call: the first usable entry of the domain's `providers.realtime` chain
(or the one `bridge.engine` forces), falling back to the offline pipeline. Engines register a builder by
name, so another provider (Deepgram, ElevenLabs, Gemini Live…) plugs in without touching the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from bridge.engines.base import RealtimeEngine
from bridge.engines.echo import EchoEngine
from bridge.engines.pipeline import PipelineEngine
from bridge.prompts import PromptAudio
from secretary.runtime import Runtime
from secretary.tenants.config import ProviderSpec, SecretaryConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EngineRequest:
    runtime: Runtime
    config: SecretaryConfig
    spec: ProviderSpec
    sample_rate: int
    prompts: PromptAudio


EngineBuilder = Callable[[EngineRequest], RealtimeEngine]


class EngineUnavailable(ValueError):
    """A builder can't serve this call (missing credentials, unsupported rate…): the next entry is tried."""


def _pipeline(request: EngineRequest) -> RealtimeEngine:
    return PipelineEngine(request.runtime, request.config, request.sample_rate, request.prompts)


def _echo(request: EngineRequest) -> RealtimeEngine:
    return EchoEngine(request.sample_rate)


def _openai(request: EngineRequest) -> RealtimeEngine:
    from bridge.engines.openai_realtime import OpenAiRealtimeEngine

    return OpenAiRealtimeEngine.from_request(request)


class EngineRegistry:
    def __init__(self) -> None:
        self._builders: dict[str, EngineBuilder] = {
            "pipeline": _pipeline,
            "local": _pipeline,
            "echo": _echo,
            "openai": _openai,
            "openai_realtime": _openai,
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
        specs = [ProviderSpec(name=forced)] if forced else list(config.providers.realtime)
        for spec in specs:
            builder = self._builders.get(spec.name)
            if builder is None:
                log.warning("realtime_engine_unknown", engine=spec.name)
                continue
            try:
                return builder(EngineRequest(runtime, config, spec, sample_rate, prompts))
            except EngineUnavailable as exc:
                log.warning("realtime_engine_unavailable", engine=spec.name, reason=str(exc))
        return _pipeline(EngineRequest(runtime, config, ProviderSpec(name="pipeline"), sample_rate, prompts))
