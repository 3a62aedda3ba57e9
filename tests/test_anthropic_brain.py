"""The Anthropic brain through the real `anthropic` SDK against a local server speaking the Messages API
streaming protocol (`tests/support/fake_anthropic.py`): text streamed sentence by sentence, a transfer by tool
use (refused for a name outside the directory), the key and `anthropic-version` on the wire, token usage, and
each failure (529 overloaded, 500, 429, a hang, a stall, an `error` event mid-stream) falling over to the
front desk with the provider benched. The tenant is invented (a veterinary practice); nothing here loads
Whisper or Piper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from secretary.conversation.brain import ChatMessage
from secretary.conversation.brain_chain import health_key
from secretary.conversation.conversation import Conversation, ReplyDone, Sentence
from secretary.providers import ProviderFactory
from secretary.settings import Settings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import ProviderChains, ProviderSpec, SecretaryConfig
from secretary.usage import UsageMeter
from tests.providers.conftest import FAST_FALLBACK, FAST_LLM
from tests.support.fake_anthropic import STALLED_TEXT, Failure, FakeAnthropic
from tests.support.fake_servers import closed_port_url
from tests.support.waiting import until

KEY = "sk-ant-test-0000"


def vet_practice(brain: list[ProviderSpec], *, operator_owned: bool = True) -> SecretaryConfig:
    """An invented tenant: Harbourside Veterinary, with a department, a vet and reception. `operator_owned`:
    from the operator's YAML file, else a database (tenant-editable) row."""
    config = SecretaryConfig.model_validate(
        {
            "domain_uuid": str(uuid.UUID("7e570000-0000-4000-8000-00000000a7e1")),
            "domain_name": "harbourside-vets.example.org",
            "name": "Robin",
            "company": "Harbourside Veterinary",
            "greeting": "Harbourside Veterinary, Robin speaking. How can I help?",
            "fallback_destination": "200",
            "directory": [
                {"name": "Surgery", "extension": "210", "aliases": ["operating theatre"]},
                {"name": "Dr. Okafor", "extension": "221", "aliases": ["Doctor Okafor", "Okafor"]},
                {"name": "Reception", "extension": "200"},
            ],
            "faq": [{"question": "Do you see exotic pets?", "answer": "Yes, we treat reptiles and birds."}],
            "providers": ProviderChains(brain=brain).model_dump(),
        }
    )
    return config.owned_by_operator() if operator_owned else config


def anthropic_spec(url: str, **extra: Any) -> ProviderSpec:
    values: dict[str, Any] = {"name": "anthropic", "model": "claude-fake", "base_url": url}
    return ProviderSpec.model_validate(values | {"api_key_env": "TEST_ANTHROPIC_KEY"} | extra)


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    server = FakeAnthropic(KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_factory(
    make_settings: Callable[..., Settings], models: LocalModels, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., ProviderFactory]]:
    """Factories with short deadlines (a hang resolves in about a second); `settings` overrides more."""
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", KEY)
    pool = CpuPool(1)
    built: list[ProviderFactory] = []

    def make(fallback: dict[str, Any] | None = None, **settings: Any) -> ProviderFactory:
        merged = FAST_FALLBACK | (fallback or {})
        factory = ProviderFactory(make_settings(fallback=merged, llm=FAST_LLM, **settings), models, pool)
        built.append(factory)
        return factory

    yield make
    for factory in built:
        await factory.close()
    pool.close()


async def test_text_streams_sentence_by_sentence_with_usage_and_headers(
    make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    config = vet_practice([anthropic_spec(fake_anthropic.url)])
    usage = UsageMeter()
    conversation = Conversation(config, make_factory().brain(config, usage))
    conversation.history.append(ChatMessage(role="assistant", content=config.opening_line))  # greeted

    events = [e async for e in conversation.stream("Do you open on Saturdays?")]

    assert [e.text for e in events if isinstance(e, Sentence)] == [
        "Claude here.",
        "You said: Do you open on Saturdays.",
    ]
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.reply.brain == "anthropic" and done.reply.failed == ()
    assert done.reply.action.type.value == "continue"
    request = fake_anthropic.requests[-1]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
    assert headers.get("anthropic-version")
    body = request["body"]
    assert body["model"] == "claude-fake" and body["stream"] is True and body["max_tokens"] == 300
    assert body["thinking"] == {"type": "disabled"} and "temperature" not in body
    assert "Harbourside Veterinary" in body["system"] and "Dr. Okafor" in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # the greeting travels
    transfer = next(t for t in body["tools"] if t["name"] == "transfer_call")
    assert transfer["input_schema"]["properties"]["target"]["enum"] == [
        "Surgery",
        "Dr. Okafor",
        "Reception",
        "operator",
    ]
    assert {t["name"] for t in body["tools"]} == {"transfer_call", "take_message", "end_call"}
    counters = usage.counters
    assert counters["brain.anthropic.requests"] == 1
    assert counters["brain.anthropic.prompt_tokens"] > 50  # the system prompt's words
    assert counters["brain.anthropic.completion_tokens"] == 4
    assert "fallbacks.brain" not in counters


async def test_tool_use_transfers_after_its_sentence(
    make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    config = vet_practice([anthropic_spec(fake_anthropic.url, options={"max_tokens": 200})])
    conversation = Conversation(config, make_factory().brain(config))

    reply = await conversation.respond("Could you put me through to Dr. Okafor?")

    assert reply.brain == "anthropic"
    assert reply.text == "Certainly, one moment."
    assert reply.action.type.value == "transfer" and reply.action.destination == "221"
    assert fake_anthropic.requests[-1]["body"]["max_tokens"] == 200


async def test_a_transfer_outside_the_directory_is_refused(
    make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    config = vet_practice([anthropic_spec(fake_anthropic.url)])
    conversation = Conversation(config, make_factory().brain(config))

    reply = await conversation.respond("Please put me through to extension 9999 in Zanzibar.")

    assert reply.brain == "anthropic"
    assert reply.action.type.value == "continue"  # no call leaves the domain's directory
    assert reply.text.startswith("Certainly, one moment.") and "9999" in reply.text


@pytest.mark.parametrize(
    "script",
    [
        lambda system: "Of course. " + " ".join(system.split()[:30]),  # reads its prompt out
        lambda system: "A nail clipping is 35 dollars, and we are open until 9:45 tonight.",  # no such facts
    ],
    ids=["recites_its_prompt", "invents_a_price"],
)
async def test_a_reply_the_guard_withholds_is_answered_by_the_front_desk_and_anthropic_stays_up(
    script: Callable[[str], str], make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    """The same reply guard as the OpenAI-compatible brains: nothing of the reply is spoken, the front desk
    answers, and the provider is not benched (it is up; only that reply was bad)."""
    config = vet_practice([anthropic_spec(fake_anthropic.url)])
    usage = UsageMeter()
    factory = make_factory()
    conversation = Conversation(config, factory.brain(config, usage))
    fake_anthropic.script = script

    events = [e async for e in conversation.stream("Do you see exotic pets?")]

    spoken = " ".join(e.text for e in events if isinstance(e, Sentence))
    done = events[-1]
    assert isinstance(done, ReplyDone) and done.reply.brain == "front_desk" and done.reply.failed == ("anthropic",)
    assert "reptiles" in done.reply.text
    assert "telephone secretary" not in spoken and "35" not in spoken and "9:45" not in spoken
    fake_anthropic.script = None
    again = await conversation.respond("Do you sell leads?")
    assert again.brain == "anthropic" and again.text == "Claude here. You said: Do you sell leads."


@pytest.mark.parametrize("failure", [f for f in Failure if f is not Failure.NONE])
async def test_a_failure_falls_over_to_the_front_desk_and_benches_anthropic(
    failure: Failure, make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.failure = failure
    config = vet_practice([anthropic_spec(fake_anthropic.url)])
    factory = make_factory()
    usage = UsageMeter()
    conversation = Conversation(config, factory.brain(config, usage))

    events = [e async for e in conversation.stream("Could you put me through to surgery?")]

    done = events[-1]
    assert isinstance(done, ReplyDone)
    assert done.reply.brain == "front_desk" and done.reply.failed == ("anthropic",)
    assert done.reply.action.type.value == "transfer" and done.reply.action.destination == "210"
    assert not any(STALLED_TEXT in e.text for e in events if isinstance(e, Sentence))  # retracted, never spoken
    assert usage.counters == {
        "failures.brain.anthropic": 1,
        "brain.front_desk.requests": 1,
        "fallbacks.brain": 1,
    }
    engine = factory._cached("brain", config, config.providers.brain[0], factory._brain)
    assert not factory.health.available(health_key(engine))

    asked = sum(r["route"] == "messages" for r in fake_anthropic.requests)
    second = await conversation.respond("Do you see exotic pets?")
    assert second.brain == "front_desk" and "reptiles" in second.text
    assert sum(r["route"] == "messages" for r in fake_anthropic.requests) == asked  # benched: not asked
    assert usage.counters["skipped.brain.anthropic"] == 1


async def test_nothing_listening_falls_over_too(make_factory: Callable[..., ProviderFactory]) -> None:
    config = vet_practice([anthropic_spec(closed_port_url())])

    reply = await Conversation(config, make_factory().brain(config)).respond("Do you see exotic pets?")

    assert reply.brain == "front_desk" and reply.failed == ("anthropic",) and "reptiles" in reply.text


async def test_a_benched_anthropic_is_probed_and_answers_again_once_it_recovers(
    make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.failure = Failure.OVERLOADED
    config = vet_practice([anthropic_spec(fake_anthropic.url)])
    factory = make_factory(fallback={"cool_down_s": 0.2})
    conversation = Conversation(config, factory.brain(config))
    assert (await conversation.respond("Do you see exotic pets?")).brain == "front_desk"
    engine = factory._cached("brain", config, config.providers.brain[0], factory._brain)
    assert not factory.health.available(health_key(engine))

    fake_anthropic.failure = Failure.NONE
    await until(lambda: factory.health.available(health_key(engine)), within_s=5.0)

    assert any(r["route"] == "models" for r in fake_anthropic.requests)  # the probe: `GET /v1/models`
    assert (await conversation.respond("Do you see exotic pets?")).brain == "anthropic"


async def test_the_operator_key_never_goes_to_a_tenant_endpoint(
    make_factory: Callable[..., ProviderFactory], fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database (tenant-editable) secretary pointing the entry at its own host gets no ANTHROPIC_API_KEY,
    even with the defaults shared and the host allowed: the entry is skipped and the front desk answers."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-operator-0000")
    host = fake_anthropic.url.removeprefix("http://")
    factory = make_factory(credentials={"share_default_keys": True}, endpoints={"allow_hosts": [host]})
    tenant_spec = ProviderSpec(name="anthropic", model="claude-fake", base_url=fake_anthropic.url)
    config = vet_practice([tenant_spec], operator_owned=False)

    reply = await Conversation(config, factory.brain(config)).respond("Do you see exotic pets?")

    assert reply.brain == "front_desk" and reply.failed == ()
    assert fake_anthropic.requests == []
