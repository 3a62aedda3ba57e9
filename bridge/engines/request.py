"""What a builder is handed to make an engine for one call, and how it says it can't.

Its own module, so the registry can import every engine and the engines can import these types without an
import circle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.engines.base import RealtimeEngine
from bridge.prompts import PromptAudio
from secretary.runtime import Runtime
from secretary.tenants.config import ProviderSpec, SecretaryConfig


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
