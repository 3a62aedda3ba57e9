"""A failed provider is benched for its cool-down (longer when the server says Retry-After), probed in the
background while benched, and back in service once a probe succeeds: never retried on every turn."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from openai import AsyncOpenAI, RateLimitError

from secretary.conversation.conversation import Conversation
from secretary.provider_health import ProviderHealth, retry_after_s
from secretary.providers import ProviderFactory
from secretary.settings import Settings
from secretary.speech.chains import health_key
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.speech.providers.elevenlabs import ElevenLabsTts
from secretary.usage import UsageMeter
from tests.conftest import globex_config
from tests.providers.conftest import KEYS, spec, with_providers
from tests.support.fake_elevenlabs import FakeElevenLabs
from tests.support.fake_openai import FakeOpenAi
from tests.support.fake_servers import RETRY_AFTER_S, Fault


async def until(condition: Callable[[], bool], within_s: float) -> float:
    """Seconds until `condition` holds; fails the test past `within_s`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > within_s:
            pytest.fail(f"condition not met within {within_s}s")
        await asyncio.sleep(0.02)
    return loop.time() - start


async def test_retry_after_is_read_from_sdk_and_aiohttp_errors(
    fake_openai: FakeOpenAi, fake_elevenlabs: FakeElevenLabs, provider_keys: dict[str, str]
) -> None:
    fake_openai.fault = fake_elevenlabs.fault = Fault.HTTP_429
    client = AsyncOpenAI(base_url=fake_openai.url + "/v1", api_key="sk-test", max_retries=0)
    try:
        with pytest.raises(RateLimitError) as raised:
            await client.models.list()
    finally:
        await client.close()
    assert retry_after_s(raised.value) == RETRY_AFTER_S

    tts = ElevenLabsTts(KEYS["TEST_ELEVENLABS_KEY"], "fakevoice01", base_url=fake_elevenlabs.url)
    try:
        with pytest.raises(Exception) as failed:
            await tts.synthesize("Hello there.")
    finally:
        await tts.close()
    assert retry_after_s(failed.value) == RETRY_AFTER_S
    assert "el-test" not in str(failed.value)  # the key never ends up in an error (or a log line)


async def test_a_provider_is_benched_for_the_longer_of_cool_down_and_retry_after() -> None:
    health = ProviderHealth(cool_down_s=0.1, probe_interval_s=0.05, probe_timeout_s=0.5)
    error = RuntimeError("rate limited")
    error.retry_after_s = 2.0  # type: ignore[attr-defined]
    try:
        health.failed("brain:groq", error)
        health.failed("brain:openai", RuntimeError("boom"))
        assert not health.available("brain:groq") and not health.available("brain:openai")
        await until(lambda: health.available("brain:openai"), 1.5)  # after its cool-down
        assert not health.available("brain:groq")  # still waiting out the server's Retry-After
        await until(lambda: health.available("brain:groq"), 4.0)
    finally:
        await health.close()


async def test_a_benched_brain_is_probed_in_the_background_and_returns(
    make_settings: Callable[..., Settings], models: LocalModels, fake_openai: FakeOpenAi, provider_keys: object
) -> None:
    settings = make_settings(fallback={"cool_down_s": 0.2, "probe_interval_s": 0.1, "probe_timeout_s": 0.5})
    pool = CpuPool(1)
    factory = ProviderFactory(settings, models, pool)
    config = with_providers(brain=[spec("groq", fake_openai.url)])
    brain = factory._cached("brain", config, config.providers.brain[0], factory._brain)
    try:
        fake_openai.fault = Fault.HTTP_500
        conversation = Conversation(config, factory.brain(config))
        assert (await conversation.respond("Hello?")).brain == "front_desk"
        assert not factory.health.available(health_key(brain))

        # Still failing: probes (GET /models) keep it benched; turns don't touch the chat endpoint.
        await asyncio.sleep(0.6)
        probes = [r for r in fake_openai.requests if r["route"] == "models"]
        assert len(probes) >= 2
        chats = sum(r["route"] == "chat" for r in fake_openai.requests)
        assert (await conversation.respond("Are you there?")).brain == "front_desk"
        assert sum(r["route"] == "chat" for r in fake_openai.requests) == chats
        assert "probe: InternalServerError 500" in factory.health.unhealthy()[health_key(brain)]

        fake_openai.fault = Fault.NONE
        await until(lambda: factory.health.available(health_key(brain)), 1.0)
        assert (await conversation.respond("Do you sell umbrellas?")).brain == "groq"
    finally:
        await factory.close()
        pool.close()


async def test_a_429_keeps_the_provider_out_for_its_retry_after(
    make_settings: Callable[..., Settings], models: LocalModels, fake_openai: FakeOpenAi, provider_keys: object
) -> None:
    settings = make_settings(fallback={"cool_down_s": 0.1, "probe_interval_s": 0.1, "probe_timeout_s": 0.5})
    pool = CpuPool(1)
    factory = ProviderFactory(settings, models, pool)
    config = with_providers(brain=[spec("openai", fake_openai.url)])
    key = health_key(factory._cached("brain", config, config.providers.brain[0], factory._brain))
    try:
        fake_openai.fault = Fault.HTTP_429
        assert (await Conversation(config, factory.brain(config)).respond("Hello?")).brain == "front_desk"
        fake_openai.fault = Fault.NONE
        await asyncio.sleep(0.5)  # the cool-down alone would be over by now
        assert not factory.health.available(key)
        benched_for = 0.5 + await until(lambda: factory.health.available(key), 3.0)
        assert benched_for >= RETRY_AFTER_S - 0.1
    finally:
        await factory.close()
        pool.close()


async def test_one_domains_bad_key_does_not_bench_another_domains_provider(
    patient_factory: ProviderFactory, fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_REVOKED_ELEVENLABS_KEY", "el-revoked")
    acme = with_providers(tts=[spec("elevenlabs", fake_elevenlabs.url)])
    globex = globex_config().model_copy(
        update={
            "providers": with_providers(
                tts=[spec("elevenlabs", fake_elevenlabs.url, api_key_env="TEST_REVOKED_ELEVENLABS_KEY")]
            ).providers
        }
    )
    globex_usage, acme_usage = UsageMeter(), UsageMeter()

    await patient_factory.tts(globex, globex_usage).synthesize("Hello from Globex.")
    await patient_factory.tts(acme, acme_usage).synthesize("Hello from Acme.")

    assert globex_usage.counters["failures.tts.elevenlabs"] == 1 and "tts.piper.requests" in globex_usage.counters
    assert acme_usage.counters == {"tts.elevenlabs.requests": 1, "tts.elevenlabs.characters": 16}
    assert "el-revoked" not in " ".join(patient_factory.health.unhealthy()) + " ".join(
        patient_factory.health.unhealthy().values()
    )
