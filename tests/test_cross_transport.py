"""One call script, every transport: the same caller (real Piper speech) calls an invented bike repair shop
through v1 (the real `secretary_ai.lua` on the FreeSWITCH simulator, over HTTP to the real ivr_service), the
realtime pipeline, and each cloud engine (ElevenLabs ConvAI, Gemini Live, OpenAI Realtime, against their
local protocol servers). The caller hears the greeting, asks what only a document in the shop's knowledge base
answers (embedded ChromaDB, the real MiniLM embedder) and must hear the answer, asks to leave a message and
leaves one. Every transport must end with the same outcome, the same turns (brain and action per turn; the
caller's words as Whisper heard them), and the same message, saved and delivered to a real SMTP server and a
signed webhook. This is what "thin transports over one core" promises. (The front desk, on v1 and the pipeline,
reads the message's details back first and the caller confirms them: one turn the cloud models don't take.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from freeswitch.caller import Say as CallerSays
from freeswitch.lua_sim import FreeSwitchSim
from freeswitch.stream_sim import SimulatedCall
from secretary.calls.models import CallRecord, TurnRecord
from secretary.messages.models import TakenMessage
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, parse_wav, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import acme_config
from tests.support import realtime_server, speech_to_speech
from tests.support.bridge import live_bridge
from tests.support.fake_convai import AGENT, FakeConvai
from tests.support.fake_gemini import FakeGemini
from tests.support.live_service import live_ivr_service
from tests.support.lua_calls import (
    FALLBACK_PROMPT_TEXT,
    acme_variables,
    assert_clean,
    reply,
    routes,
    write_fallback_prompt,
)
from tests.support.message_sinks import SmtpSink, WebhookSink, free_port
from tests.support.speech import Speech
from tests.support.waiting import until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]

SHOP = "d0000000-00b1-4000-8000-0000000000b1"
SHOP_NAME = "spokeandchain.example.com"
GREETING = "Spoke and Chain Cycles, this is Robin. How can I help?"
DOCUMENT = (
    "Spoke and Chain Cycles repairs bicycles of every kind. "
    "A full bicycle service costs ninety dollars and takes two days. "
    "Puncture repairs are done while you wait."
)
QUESTION = "How much does a full bicycle service cost?"
LEAVE = "I would like to leave a message for the workshop."
CONFIRM = "Yes, that is right."  # the front desk's read-back of the message's details
CALLER = {"caller_id_number": "1000", "caller_id_name": "Test Caller"}  # as the Lua simulator's channel has it
MESSAGE = "Please call me back tomorrow about my wheel."
WEBHOOK_SECRET = "whsec-spoke-0123456789"
KEYS = {"TEST_CONVAI_KEY": "el-convai-test-0000", "TEST_GEMINI_KEY": "gm-test-0000"}
INBOX = "workshop@spokeandchain.example.com"
# Deadlines only a real fault misses, on a loaded 2-core machine: this test is about the call's course.
FALLBACK = {"realtime_connect_s": 10.0, "realtime_reply_s": 30.0, "realtime_stall_s": 5.0, "late_after_s": 15.0}
TRANSPORTS = [
    "v1",
    "pipeline",
    "elevenlabs_convai",
    "gemini_live",
    "openai_realtime",
]


def shop(messages: dict[str, Any], realtime: list[Any] | None) -> dict[str, Any]:
    """The bike shop's secretary: its own company, staff and facts, open all week (no closed-hours path)."""
    config = acme_config().model_dump(mode="json") | {
        "domain_uuid": SHOP,
        "domain_name": SHOP_NAME,
        "name": "Robin",
        "company": "Spoke and Chain Cycles",
        "greeting": GREETING,
        "farewell": "Thanks for calling Spoke and Chain. Goodbye!",
        "instructions": "Be brief. Offer to take a message when the workshop is busy.",
        "fallback_destination": "2001",
        "directory": [{"name": "Workshop", "extension": "2002", "aliases": ["mechanic", "repairs desk"]}],
        "faq": [],
        "playback_mode": "module",
        "messages": messages,
    }
    config["business_hours"] = {
        "timezone": "Europe/Amsterdam",
        "weekly": {day: ["00:00-23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        "closed_dates": [],
    }
    if realtime is not None:
        config["providers"] = config["providers"] | {"realtime": realtime}
    return config


def model_policy(say: Callable[[str], Any], tool: Callable[..., Any]) -> Callable[[str], Any]:
    """The cloud "model": it looks facts up in the knowledge base and takes messages through its tools."""

    def decide(heard: str) -> Any:
        text = heard.lower()
        if "message" in text:
            return tool("take_message", {})
        if "service" in text or "cost" in text:
            return tool("lookup_knowledge", {"query": heard})
        return say("Sorry, could you say that again?")

    return decide


@dataclass
class Servers:
    smtp: SmtpSink
    webhook: WebhookSink
    convai: FakeConvai
    gemini: FakeGemini
    openai: realtime_server.RealtimeServer
    openai_url: str
    fallback_prompt: Path

    def realtime(self, transport: str) -> list[Any] | None:
        """The secretary's realtime chain for `transport` (the pipeline behind every cloud engine)."""
        if transport == "elevenlabs_convai":
            spec = {"base_url": self.convai.url, "api_key_env": "TEST_CONVAI_KEY", "options": {"agent_id": AGENT}}
        elif transport == "gemini_live":
            spec = {"base_url": self.gemini.url, "api_key_env": "TEST_GEMINI_KEY", "model": "gemini-live-test"}
        elif transport == "openai_realtime":
            spec = {"base_url": self.openai_url}
        else:
            return None
        return [{"name": transport, **spec}, "pipeline"]


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (KEYS | {"SPOKE_WEBHOOK_SECRET": WEBHOOK_SECRET}).items():
            patch.setenv(name, value)
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Servers]:
    smtp, webhook = SmtpSink(free_port()), WebhookSink(free_port(), WEBHOOK_SECRET)
    smtp.start()
    await webhook.start()
    s2s = model_policy(speech_to_speech.Say, speech_to_speech.CallTool)
    convai = FakeConvai(speech.say, speech.transcribe, KEYS["TEST_CONVAI_KEY"], policy=s2s)
    gemini = FakeGemini(speech.say, speech.transcribe, KEYS["TEST_GEMINI_KEY"], policy=s2s)
    openai = realtime_server.RealtimeServer(
        lambda text: speech.say(text, 24000),
        speech.transcribe,
        model_policy(realtime_server.Say, realtime_server.CallTool),
    )
    await convai.start()
    await gemini.start()
    openai_url = await openai.start()
    prompt = write_fallback_prompt(wav_bytes(speech.say(FALLBACK_PROMPT_TEXT)), tmp_path_factory.mktemp("sounds"))
    try:
        yield Servers(smtp, webhook, convai, gemini, openai, openai_url, prompt)
    finally:
        await openai.close()
        await gemini.stop()
        await convai.stop()
        await webhook.stop()
        smtp.stop()


@dataclass
class Heard:
    """What one call came to, in the terms every transport shares."""

    call_uuid: str
    greeting: str  # what the caller heard first
    answer: str  # what the caller heard after asking the question
    farewell: str  # what the caller heard after leaving the message


def turns(records: list[TurnRecord], expected: list[tuple[str, str, str, str]]) -> list[tuple[Any, ...]]:
    """The turns as (brain, action, caller words, secretary words), the words as `expected` has them where
    they were said (Whisper's wording varies around them) and in full where not, so a mismatch reads plainly."""
    seen: list[tuple[Any, ...]] = []
    for index, turn in enumerate(records):
        _, _, caller, secretary = expected[index] if index < len(expected) else ("", "", "", "")
        seen.append(
            (
                turn.brain,
                turn.action.type.value,
                caller if caller and caller in turn.caller_text.lower() else turn.caller_text,
                secretary if secretary and secretary in turn.secretary_text.lower() else turn.secretary_text,
            )
        )
    return seen


def settings_for(servers: Servers, transport: str, tmp_path: Path) -> dict[str, Any]:
    """The settings every transport runs on (its own folders come from `make_settings`)."""
    messages = {"email_to": [INBOX], "webhook_url": servers.webhook.url, "webhook_secret_env": "SPOKE_WEBHOOK_SECRET"}
    path = tmp_path / "secretaries.yaml"
    path.write_text(yaml.safe_dump({"secretaries": [shop(messages, servers.realtime(transport))]}))
    return dict(
        secretaries_file=path,
        messages={"backoff_base_s": 0.05, "backoff_max_s": 0.2, "poll_s": 0.05},
        endpoints={"allow_hosts": ["127.0.0.1"]},  # the receivers stand on loopback, as an operator allowed
        smtp={"host": "127.0.0.1", "port": servers.smtp.port, "security": "none", "from_address": "ai@spoke.example"},
        knowledge={"search_timeout_s": 30.0},
        fallback=FALLBACK,
    )


async def add_document(settings: Settings, models: LocalModels) -> None:
    """Into the shop's knowledge base (embedded ChromaDB under the data folder), before the transport opens it."""
    runtime = Runtime.create(settings, models=models)
    try:
        info = await runtime.knowledge.add_document(uuid.UUID(SHOP), "services.txt", DOCUMENT.encode())
    finally:
        await runtime.close()
    assert info.status == "indexed", info


def delivered_to_both(servers: Servers, call_uuid: str) -> bool:
    hooks = [h for h in servers.webhook.accepted if h["message"]["call_uuid"] == call_uuid]
    return bool(hooks and servers.smtp.received)


async def v1_call(servers: Servers, settings: Settings, models: LocalModels, speech: Speech) -> Heard:
    """The real Lua script, its mod_curl calls to the ivr_service over HTTP; the courier runs in the service."""
    with live_ivr_service(settings, models) as (url, _runtime):
        values = acme_variables(url, servers.fallback_prompt, domain_uuid=SHOP, domain_name=SHOP_NAME)
        values["voiceai_spool_dir"] = str(settings.spool.dir.resolve())
        caller = [CallerSays(speech.say(text)) for text in (QUESTION, LEAVE, CONFIRM, MESSAGE)]
        sim = FreeSwitchSim(variables=values, caller=caller)
        result = await asyncio.to_thread(sim.run, "secretary_ai.lua")
        assert_clean(result)
        assert [route for route, _ in routes(result)] == ["start", "turns", "turns", "turns", "turns", "end"]
        await until(lambda: delivered_to_both(servers, result.uuid), 30)
    played = {p.path: p.pcm() for p in result.played if p.data is not None}
    start, answered, thanked = (reply(result.exchanges[n]) for n in (0, 1, 4))
    return Heard(
        result.uuid,
        (await speech.hear(played[start["say"]["audio_file"]])),
        (await speech.hear(played[answered["say"]["audio_file"]])),
        (await speech.hear(played[thanked["say"]["audio_file"]])),
    )


def after(call: SimulatedCall, start_ms: int, end_ms: int | None = None) -> Pcm:
    data = call.heard().data
    end = None if end_ms is None else 2 * call.rate * end_ms // 1000
    return Pcm(data[2 * call.rate * start_ms // 1000 : end], call.rate)


async def realtime_call(
    servers: Servers,
    overrides: dict[str, Any],
    models: LocalModels,
    speech: Speech,
    make_settings: Callable[..., Settings],
    front_desk: bool,
) -> Heard:
    """The caller on the FreeSWITCH simulator, the bridge choosing the engine from the secretary's chain."""
    question, leave, confirm, message = (speech.say(text, 8000) for text in (QUESTION, LEAVE, CONFIRM, MESSAGE))
    async with live_bridge(make_settings, models, reply_deadline_s=30, **overrides) as live:
        live.runtime.start_background()
        metadata = CALLER | {"sample_rate": 8000}
        async with SimulatedCall(
            live.url, SHOP, metadata=metadata
        ) as call:  # Whisper after the call: it holds the loop
            greeting_at = await call.secretary_speaks()
            greeting_end = await call.secretary_silent()
            asked = call.say(question)
            answer_at = await call.secretary_speaks(after_ms=asked + 500, timeout_s=60)
            answer_end = await call.secretary_silent(timeout_s=60)
            asked = call.say(leave)
            await call.secretary_speaks(after_ms=asked + 500, timeout_s=60)
            if front_desk:  # the details read back (pausing between the digits), then confirmed
                await call.secretary_silent(quiet_ms=1000, timeout_s=60)
                asked = call.say(confirm)
                await call.secretary_speaks(after_ms=asked + 500, timeout_s=60)
            await call.secretary_silent(timeout_s=60)  # the prompt, then the tone
            left = call.say(message)
            await call.wait_closed(90)
        await live.call_over(call.call_uuid, timeout_s=30, domain_uuid=SHOP)
        await until(lambda: delivered_to_both(servers, call.call_uuid), 30)
    greeting = await speech.hear(after(call, greeting_at, greeting_end))
    answer = await speech.hear(after(call, answer_at, answer_end))
    farewell = await speech.hear(after(call, left))
    return Heard(call.call_uuid, greeting, answer, farewell)


async def saved(settings: Settings, models: LocalModels, call_uuid: str) -> tuple[CallRecord, TakenMessage]:
    """The call's record and its one message, read back from the stores after the transport has closed."""
    runtime = Runtime.create(settings, models=models)
    try:
        record = await runtime.call_records.get(uuid.UUID(SHOP), uuid.UUID(call_uuid))
        messages = [m for m in await runtime.messages.list_messages(uuid.UUID(SHOP)) if str(m.call_uuid) == call_uuid]
    finally:
        await runtime.close()
    assert record is not None, "the call ended without a record"
    assert len(messages) == 1, messages
    return record, messages[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_same_call_gives_the_same_outcome_turns_and_message(
    transport: str,
    servers: Servers,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    speech: Speech,
    tmp_path: Path,
) -> None:
    servers.smtp.received.clear()
    servers.webhook.accepted.clear()
    overrides = settings_for(servers, transport, tmp_path)
    settings = make_settings(**overrides)
    await add_document(settings, models)
    if transport == "v1":
        heard = await v1_call(servers, settings, models, speech)
    else:
        heard = await realtime_call(servers, overrides, models, speech, make_settings, transport == "pipeline")
    record, message = await saved(settings, models, heard.call_uuid)

    # the record: one brain for the dialogue (the front desk, or the cloud model), then the message
    front_desk = transport in ("v1", "pipeline")
    dialogue = "front_desk" if front_desk else transport
    confirmed = [(dialogue, "continue", "message", "test caller, and we can call you back on 1 0 0 0. is that right?")]
    expected = [
        (dialogue, "continue", "service", "ninety dollars"),
        *(confirmed if front_desk else []),
        (dialogue, "take_message", "right" if front_desk else "message", "message after the tone"),
        ("message", "hangup", "tomorrow", "taken your message"),
    ]
    assert turns(record.turns, expected) == expected
    assert record.outcome == "message" and record.transport == ("turn" if transport == "v1" else "realtime")

    # what the caller heard
    assert "help" in heard.greeting.lower(), heard.greeting
    assert "ninety" in heard.answer.lower() or "90" in heard.answer, heard.answer
    assert "thank" in heard.farewell.lower() and "message" in heard.farewell.lower(), heard.farewell

    # the message: saved with the caller's recording, delivered by e-mail and by the signed webhook
    assert message.transcript == record.turns[-1].caller_text and message.audio_file
    details = ("Workshop", "Test Caller", "1000") if front_desk else ("", "", "")  # a cloud model asks none
    assert (message.recipient, message.caller_name, message.callback_number) == details
    recording = parse_wav(Path(message.audio_file).read_bytes())
    assert "tomorrow" in (await speech.hear(recording)).lower()
    (hook,) = [h for h in servers.webhook.accepted if h["message"]["call_uuid"] == heard.call_uuid]
    assert hook["event"] == "message.taken" and hook["message"]["transcript"] == message.transcript
    assert hook["message"]["has_audio"] is True
    ((envelope, mail),) = servers.smtp.received
    assert envelope.rcpt_tos == [INBOX]
    body, attachment = (part for part in mail.walk() if not part.is_multipart())
    assert "tomorrow" in str(body.get_payload(decode=True)).lower()
    assert attachment.get_filename() == "message.wav"
