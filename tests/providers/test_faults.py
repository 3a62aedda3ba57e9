"""Every cloud adapter, driven through its official SDK (or documented protocol) against a local server, under
every fault: HTTP 500, 429 with Retry-After, connection refused, a hang before the first byte, a stall
mid-stream, a connection broken mid-stream, malformed JSON. Each asserts what the caller gets (the local
fallback answered (a hanging brain hedged), nothing was said twice), the usage record, and that the failed
provider is benched: the next request does not touch it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from secretary.conversation.brain import ReplyWithheld
from secretary.conversation.conversation import Conversation, ReplyDone, Sentence
from secretary.conversation.llm_brain import ReplyGuard
from secretary.providers import ProviderFactory
from secretary.speech.audio import Pcm
from secretary.speech.chains import health_key
from secretary.usage import UsageMeter
from tests.providers.conftest import spec, with_providers
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_elevenlabs import FakeElevenLabs
from tests.support.fake_openai import STALLED_TEXT, FakeOpenAi
from tests.support.fake_servers import FAULTS, FakeServer, Fault, closed_port_url
from tests.support.speech import Speech

UTTERANCE = "I would like to speak to billing please."
TTS_TEXT = "Our office is next to the train station. We are closed on Sunday afternoons."


def target(server: FakeServer, fault: Fault) -> str:
    server.fault = fault
    return closed_port_url() if fault is Fault.REFUSED else server.url


def heard(parts: list[Pcm], rate: int = 16000) -> Pcm:
    return Pcm(b"".join(p.resampled(rate).data for p in parts), rate)


async def benched(factory: ProviderFactory, engine: object, within_s: float = 3.0) -> bool:
    """Whether the provider is (or within `within_s` becomes) benched: a hedged request is judged late."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while factory.health.available(health_key(engine)):
        if loop.time() > end:
            return False
        await asyncio.sleep(0.05)
    return True


# -- brains --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", ["openai", "groq"])
async def test_brain_fault_front_desk_answers(
    provider: str, fault: Fault, factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    config = with_providers(brain=[spec(provider, target(fake_openai, fault))])
    usage = UsageMeter()
    chain = factory.brain(config, usage)
    conversation = Conversation(config, chain)

    events = [event async for event in conversation.stream("Could you put me through to billing?")]

    reply = events[-1].reply if isinstance(events[-1], ReplyDone) else None
    assert reply is not None
    sentences = [e.text for e in events if isinstance(e, Sentence)]
    assert reply.brain == "front_desk" and reply.failed == (provider,)
    assert reply.action.type.value == "transfer" and reply.action.destination == "1003"
    assert not any(STALLED_TEXT in s for s in sentences)  # the failed brain's words are never spoken
    assert len(sentences) == len(set(sentences))
    assert usage.counters == {
        f"failures.brain.{provider}": 1,
        "brain.front_desk.requests": 1,
        "fallbacks.brain": 1,
    }

    # Benched: the next turn goes straight to the front desk without calling the provider.
    asked = len(fake_openai.requests)
    second = await conversation.respond("When are you open?")
    assert second.brain == "front_desk" and "Monday to Friday" in second.text
    assert len(fake_openai.requests) == asked
    assert usage.counters[f"skipped.brain.{provider}"] == 1


@pytest.mark.parametrize("provider", ["openai", "groq"])
async def test_brain_streams_text_and_tool_calls_with_token_usage(
    provider: str, patient_factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    config = with_providers(brain=[spec(provider, fake_openai.url)])
    usage = UsageMeter()
    conversation = Conversation(config, patient_factory.brain(config, usage))

    transfer = await conversation.respond("Please connect me to Dr. Miller.")
    chat = await conversation.respond("Do you sell umbrellas?")

    assert transfer.brain == provider and transfer.action.destination == "1004"
    assert transfer.text == "Certainly, one moment."
    assert chat.text == "Cloud model here. You said: Do you sell umbrellas."
    body = fake_openai.requests[-1]["body"]
    assert body["stream"] is True and body["model"] == "fake-model"
    assert [m["role"] for m in body["messages"]][-3:] == ["user", "assistant", "user"]  # history travels
    assert (
        fake_openai.requests[-1]["auth"]
        == f"Bearer {'sk-test-openai-0000' if provider == 'openai' else 'gsk-test-groq-0000'}"
    )
    assert usage.counters[f"brain.{provider}.requests"] == 2
    assert usage.counters[f"brain.{provider}.prompt_tokens"] > 100
    assert usage.counters[f"brain.{provider}.completion_tokens"] == 3 + 10
    assert "fallbacks.brain" not in usage.counters


def recites_its_prompt(messages: list[dict[str, Any]]) -> str:
    """What a small model was seen doing: reading its system prompt out to the caller."""
    return "Sure. " + " ".join(str(messages[0]["content"]).split()[:40])


def invents_a_price(messages: list[dict[str, Any]]) -> str:
    return "A full service is 249 dollars. Anything else?"


@pytest.mark.parametrize("script", [recites_its_prompt, invents_a_price])
async def test_brain_reply_withheld_front_desk_answers_provider_not_benched(
    script: Callable[[list[dict[str, Any]]], str], patient_factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    config = with_providers(brain=[spec("openai", fake_openai.url)])
    usage = UsageMeter()
    conversation = Conversation(config, patient_factory.brain(config, usage))
    fake_openai.script = script

    events = [event async for event in conversation.stream("When are you open?")]

    sentences = [e.text for e in events if isinstance(e, Sentence)]
    reply = events[-1].reply if isinstance(events[-1], ReplyDone) else None
    assert reply is not None and reply.brain == "front_desk" and reply.failed == ("openai",)
    assert "Monday to Friday" in reply.text
    assert not any("telephone secretary" in s or "249" in s for s in sentences)  # never spoken, not even half
    assert usage.counters["fallbacks.brain"] == 1
    # The provider is up: only that reply was bad. The next turn asks it again.
    fake_openai.script = None
    chat = await conversation.respond("Do you sell umbrellas?")
    assert chat.brain == "openai" and chat.text == "Cloud model here. You said: Do you sell umbrellas."


def scripted_model(
    factory: ProviderFactory, fake_openai: FakeOpenAi, script: Callable[[list[dict[str, Any]]], str]
) -> Conversation:
    """A conversation whose brain is the OpenAI-compatible server answering with `script`'s text."""
    config = with_providers(brain=[spec("openai", fake_openai.url)])
    fake_openai.script = script
    return Conversation(config, factory.brain(config, UsageMeter()))


async def test_brain_prices_and_times_the_facts_hold_are_said(
    patient_factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    """The guard passes numbers the prompt holds, on either clock, and small bare numbers."""
    conversation = scripted_model(
        patient_factory, fake_openai, lambda messages: "We open at 9 AM on Monday, 2 doctors are in. Thanks for asking."
    )

    reply = await conversation.respond("When do you open on Monday?")

    assert reply.brain == "openai" and "9 AM" in reply.text


def test_reply_guard_waits_for_a_number_streamed_digit_by_digit() -> None:
    """Models stream "$120" as "$", "1", "2", "0": only the whole number is judged, mid-stream and at the end."""
    guard = ReplyGuard([], ["A full service is $120, an oil change $45."])
    for piece in ["A full service is $", "1", "2", "0", "."]:
        guard.feed(piece)
    guard.finish()
    invented = ReplyGuard([], ["A full service is $120."])
    for piece in ["It is $", "1", "3"]:
        invented.feed(piece)  # "$13" may still become "$130…": not judged yet
    with pytest.raises(ReplyWithheld, match="13"):
        invented.finish()
    sentence = ReplyGuard([], ["A full service is $120."])
    for piece in ["It is $", "1", "3", "."]:
        sentence.feed(piece)
    with pytest.raises(ReplyWithheld, match="13"):
        sentence.feed(" ")  # the space that completes the sentence: judged before it can be spoken


@pytest.mark.parametrize(
    "written",
    [
        '{"name": "transfer_call", "arguments": {"target": "Billing"}}',
        '{{"name": "transfer_call", "arguments": {"target": "Billing"}}}}',
        '<tool_call>\n{"name": "transfer_call", "arguments": "{\\"target\\": \\"Billing\\"}"}\n</tool_call>',
    ],
)
async def test_brain_tool_call_written_as_text_is_the_decision_never_spoken(
    written: str, patient_factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    """What Qwen2.5-Coder 0.5B/1.5B do under llama.cpp: the call as text content, not `tool_calls`."""
    conversation = scripted_model(patient_factory, fake_openai, lambda messages: written)

    events = [event async for event in conversation.stream("Billing please.")]

    reply = events[-1].reply if isinstance(events[-1], ReplyDone) else None
    assert reply is not None and reply.brain == "openai"
    assert reply.action.type.value == "transfer" and reply.action.destination == "1003"
    assert not any("{" in e.text or "tool_call" in e.text for e in events if isinstance(e, Sentence))


async def test_brain_markup_that_is_no_tool_call_is_withheld(
    patient_factory: ProviderFactory, fake_openai: FakeOpenAi
) -> None:
    conversation = scripted_model(patient_factory, fake_openai, lambda messages: '{"answer": "We open at nine."}')

    reply = await conversation.respond("When are you open?")

    assert reply.brain == "front_desk" and reply.failed == ("openai",) and "{" not in reply.text


# -- speech to text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", ["deepgram", "openai"])
async def test_stt_fault_whisper_transcribes(
    provider: str,
    fault: Fault,
    factory: ProviderFactory,
    fake_openai: FakeOpenAi,
    fake_deepgram: FakeDeepgram,
    speech: Speech,
) -> None:
    server: FakeServer = fake_deepgram if provider == "deepgram" else fake_openai
    config = with_providers(stt=[spec(provider, target(server, fault))])
    usage = UsageMeter()
    chain = factory.stt(config, usage)
    utterance = speech.say(UTTERANCE, 8000)

    transcript = await chain.transcribe(utterance, "en", ["Billing"])

    assert transcript.provider == "whisper"
    assert "billing" in transcript.text.lower()
    assert usage.counters["stt.whisper.requests"] == 1 and usage.counters["fallbacks.stt"] == 1
    assert usage.counters["stt.whisper.audio_seconds"] == pytest.approx(utterance.duration_s, abs=0.01)
    cloud = factory._cached("stt", config, config.providers.stt[0], factory._stt_engine)
    assert await benched(factory, cloud)

    asked = len(server.requests)
    again = await factory.stt(config, usage).transcribe(utterance, "en")
    assert again.provider == "whisper" and len(server.requests) == asked
    assert usage.counters[f"skipped.stt.{provider}"] == 1


@pytest.mark.parametrize(("provider", "encoding"), [("deepgram", "linear16"), ("deepgram", "mulaw"), ("openai", "")])
async def test_stt_cloud_transcribes(
    provider: str,
    encoding: str,
    patient_factory: ProviderFactory,
    fake_openai: FakeOpenAi,
    fake_deepgram: FakeDeepgram,
    speech: Speech,
) -> None:
    server: FakeServer = fake_deepgram if provider == "deepgram" else fake_openai
    config = with_providers(stt=[spec(provider, server.url, options={"encoding": encoding} if encoding else {})])
    usage = UsageMeter()

    transcript = await patient_factory.stt(config, usage).transcribe(speech.say(UTTERANCE, 8000), "en", ["Billing"])

    assert transcript.provider == provider
    assert "billing" in transcript.text.lower()
    assert usage.counters[f"stt.{provider}.requests"] == 1 and "fallbacks.stt" not in usage.counters
    if provider == "deepgram":
        query = fake_deepgram.requests[-1]["query"]
        assert query["encoding"] == encoding and query["sample_rate"] == "8000"
        assert query["interim_results"] == "true" and query["endpointing"] == "300"
        assert fake_deepgram.requests[-1]["keyterms"] == ["Billing"]
        assert fake_deepgram.close_streams == 1
        # a model before nova-3 gets the names as single-word keywords instead
        older = with_providers(stt=[spec(provider, server.url, model="nova-2", options={"encoding": encoding})])
        await patient_factory.stt(older, usage).transcribe(
            speech.say(UTTERANCE, 8000), "en", ["Mrs. Okonkwo", "Billing"]
        )
        assert fake_deepgram.requests[-1]["keywords"] == ["Okonkwo", "Billing"]  # titles are no keywords
        assert fake_deepgram.requests[-1]["keyterms"] == []
    else:
        fields = fake_openai.requests[-1]["fields"]
        assert fields["language"] == "en" and "Billing" in fields["prompt"]


# -- text to speech ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", ["openai", "elevenlabs"])
async def test_tts_fault_piper_speaks_nothing_twice(
    provider: str,
    fault: Fault,
    factory: ProviderFactory,
    fake_openai: FakeOpenAi,
    fake_elevenlabs: FakeElevenLabs,
    speech: Speech,
) -> None:
    server: FakeServer = fake_elevenlabs if provider == "elevenlabs" else fake_openai
    config = with_providers(tts=[spec(provider, target(server, fault))])
    usage = UsageMeter()

    parts = [pcm async for pcm in factory.tts(config, usage).stream(TTS_TEXT)]

    said = (await speech.hear(heard(parts))).lower()
    assert said.count("sunday") == 1 and said.count("station") <= 1
    assert usage.counters[f"failures.tts.{provider}"] == 1
    if fault in (Fault.STALL, Fault.DISCONNECT):
        # The first sentence broke after some of it was heard: it is not said again; the next goes to Piper.
        assert "afternoon" in said
        assert usage.counters["tts.piper.requests"] == 1
    else:
        assert "train station" in said and "afternoon" in said
        assert usage.counters["tts.piper.requests"] == 2 and usage.counters["fallbacks.tts"] == 2
    assert f"tts.{provider}.requests" not in usage.counters

    # A whole reply (the v1 path) after the failure: the benched provider is not asked at all.
    asked = len(server.requests)
    clip = await factory.tts(config, usage).synthesize("We are closed on Sunday.")
    assert "sunday" in (await speech.hear(clip)).lower() and len(server.requests) == asked


@pytest.mark.parametrize("fault", [Fault.STALL, Fault.DISCONNECT, Fault.HANG])
@pytest.mark.parametrize("provider", ["openai", "elevenlabs"])
async def test_tts_whole_reply_starts_over_on_the_fallback(
    provider: str,
    fault: Fault,
    factory: ProviderFactory,
    fake_openai: FakeOpenAi,
    fake_elevenlabs: FakeElevenLabs,
    speech: Speech,
) -> None:
    server: FakeServer = fake_elevenlabs if provider == "elevenlabs" else fake_openai
    config = with_providers(tts=[spec(provider, target(server, fault))])
    chain = factory.tts(config)

    clip = await chain.synthesize(TTS_TEXT)

    said = (await speech.hear(clip)).lower()
    assert "train station" in said and said.count("office") == 1 and said.count("sunday") == 1
    assert chain.last_voice_id == factory.local_tts.voice_id


@pytest.mark.parametrize("output_format", ["pcm_16000", "pcm_22050", "ulaw_8000"])
async def test_elevenlabs_streams_the_call_format(
    output_format: str, patient_factory: ProviderFactory, fake_elevenlabs: FakeElevenLabs, speech: Speech
) -> None:
    config = with_providers(tts=[spec("elevenlabs", fake_elevenlabs.url, options={"output_format": output_format})])
    usage = UsageMeter()
    chain = patient_factory.tts(config, usage)

    parts = [pcm async for pcm in chain.stream("We are closed on Sunday afternoons.")]

    rate = 8000 if output_format == "ulaw_8000" else int(output_format.split("_")[1])
    assert chain.sample_rate == rate and {p.sample_rate for p in parts} == {rate}
    assert "sunday" in (await speech.hear(heard(parts))).lower()
    request = fake_elevenlabs.requests[-1]
    assert request["format"] == output_format and request["voice"] == "fakevoice01"
    assert usage.counters == {"tts.elevenlabs.requests": 1, "tts.elevenlabs.characters": 35}
