"""Fixtures for the provider tests: the fake provider servers on loopback, keys in the environment, and
settings with short deadlines so each fault resolves in well under a second."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from secretary.providers import ProviderFactory
from secretary.settings import Settings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import ProviderChains, ProviderSpec, SecretaryConfig
from tests.conftest import acme_config
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_elevenlabs import FakeElevenLabs
from tests.support.fake_openai import FakeOpenAi
from tests.support.speech import Speech

KEYS = {
    "TEST_OPENAI_KEY": "sk-test-openai-0000",
    "TEST_GROQ_KEY": "gsk-test-groq-0000",
    "TEST_DEEPGRAM_KEY": "dg-test-0000",
    "TEST_ELEVENLABS_KEY": "el-test-0000",
}
FAST_FALLBACK = {
    "stt_first_result_s": 2.0,
    "stt_stall_s": 0.8,
    "stt_hedge_after_s": 1.0,
    "tts_first_audio_s": 1.2,
    "tts_stall_s": 0.6,
    "brain_stall_s": 0.6,
    "brain_hedge_after_s": 0.8,
    "late_after_s": 0.6,  # a cold first request on a loaded machine can take 0.3 s: no filler for that
    "cool_down_s": 600.0,  # no probe starts within a test, however long a busy box makes it
    "probe_interval_s": 0.2,
    "probe_timeout_s": 0.5,
}
FAST_LLM = {"first_token_deadline_s": 1.2, "total_deadline_s": 6.0}
# For tests of the healthy path: deadlines no loaded CI machine misses, so only real faults trigger fallbacks.
PATIENT_FALLBACK = FAST_FALLBACK | {
    "stt_first_result_s": 10.0,
    "stt_stall_s": 6.0,
    "stt_hedge_after_s": 10.0,
    "tts_first_audio_s": 10.0,
    "tts_stall_s": 6.0,
    "brain_stall_s": 6.0,
    "brain_hedge_after_s": 10.0,
}
PATIENT_LLM = {"first_token_deadline_s": 10.0, "total_deadline_s": 30.0}


@pytest.fixture
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return KEYS


@pytest.fixture
def fast_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(**fallback: Any) -> Settings:
        return make_settings(fallback=FAST_FALLBACK | fallback, llm=FAST_LLM)

    return build


@pytest.fixture
async def factory(  # short deadlines: a hang or stall resolves in about a second
    fast_settings: Callable[..., Settings], models: LocalModels, provider_keys: dict[str, str]
) -> AsyncIterator[ProviderFactory]:
    pool = CpuPool(2)
    built = ProviderFactory(fast_settings(), models, pool)
    yield built
    await built.close()
    pool.close()


@pytest.fixture
async def patient_factory(
    make_settings: Callable[..., Settings], models: LocalModels, provider_keys: dict[str, str]
) -> AsyncIterator[ProviderFactory]:
    """A factory whose deadlines only a real fault misses (for tests where the cloud provider must answer)."""
    pool = CpuPool(2)
    built = ProviderFactory(make_settings(fallback=PATIENT_FALLBACK, llm=PATIENT_LLM), models, pool)
    yield built
    await built.close()
    pool.close()


@pytest.fixture
async def fake_openai(speech: Speech) -> AsyncIterator[FakeOpenAi]:
    server = FakeOpenAi(speech.say, speech.transcribe)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_elevenlabs(speech: Speech, provider_keys: dict[str, str]) -> AsyncIterator[FakeElevenLabs]:
    server = FakeElevenLabs(speech.say, provider_keys["TEST_ELEVENLABS_KEY"])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def fake_deepgram(speech: Speech, provider_keys: dict[str, str]) -> AsyncIterator[FakeDeepgram]:
    server = FakeDeepgram(speech.transcribe, provider_keys["TEST_DEEPGRAM_KEY"])
    await server.start()
    yield server
    await server.stop()


def with_providers(
    stt: list[ProviderSpec] | None = None,
    brain: list[ProviderSpec] | None = None,
    tts: list[ProviderSpec] | None = None,
) -> SecretaryConfig:
    """The demo tenant with these chains (each ends in its local engine anyway)."""
    chains = ProviderChains(
        stt=stt or [ProviderSpec(name="whisper")],
        brain=brain or [ProviderSpec(name="front_desk")],
        tts=tts or [ProviderSpec(name="piper")],
    )
    return acme_config().model_copy(update={"providers": chains})


def spec(name: str, url: str, **extra: Any) -> ProviderSpec:
    """A provider entry pointing at a fake server (`url` is its base URL as the SDK wants it)."""
    keys = {"openai": "TEST_OPENAI_KEY", "groq": "TEST_GROQ_KEY", "deepgram": "TEST_DEEPGRAM_KEY"}
    keys["elevenlabs"] = "TEST_ELEVENLABS_KEY"
    base = {"openai": url + "/v1", "groq": url}.get(name, url)
    values: dict[str, Any] = {"name": name, "base_url": base, "api_key_env": keys.get(name)}
    if name == "elevenlabs":
        values["voice"] = "fakevoice01"
    if name in ("openai", "groq") and "model" not in extra:
        values["model"] = "fake-model"
    return ProviderSpec.model_validate(values | extra)


@pytest.fixture(scope="session", autouse=True)
def warm_models(models: LocalModels) -> None:
    """Load Whisper and Piper once, before any deadline starts counting."""
    models.whisper()
    models.piper()
