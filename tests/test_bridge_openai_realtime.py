"""The OpenAI Realtime engine through the official SDK against a local server speaking the Realtime event
protocol; the caller is the FreeSWITCH simulator, with real speech both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from freeswitch.stream_sim import SimulatedCall, sound_onset
from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from tests.support.bridge import ACME, LiveBridge, live_bridge
from tests.support.realtime_server import CallTool, RealtimeServer, Say
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(120)
LOCATED = "We are at 100 Main Street in Springfield, next to the train station. Parking is behind the building."


def policy(text: str) -> Say | CallTool:
    heard = text.lower()
    if "billing" in heard:
        return CallTool("transfer_call", {"target": "Billing"})
    if "located" in heard or "where" in heard:
        return Say(LOCATED)
    if "parking" in heard:
        return Say("Yes, there is free parking behind the building.")
    return Say("Sorry, could you say that again?")


@asynccontextmanager
async def realtime_bridge(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, reply_deadline_s: float = 15.0
) -> AsyncIterator[tuple[LiveBridge, RealtimeServer]]:
    server = RealtimeServer(lambda text: speech.say(text, 24000), speech.transcribe, policy)
    base_url = await server.start()
    try:
        async with live_bridge(
            make_settings,
            models,
            engine="openai_realtime",
            reply_deadline_s=reply_deadline_s,
            llm={"base_url": base_url},
        ) as bridge:
            yield bridge, server
    finally:
        await server.close()


def after(call: SimulatedCall, start_ms: int) -> Pcm:
    heard = call.heard()
    return Pcm(heard.data[2 * call.rate * start_ms // 1000 :], call.rate)


async def test_8k_call_uses_g711_and_answers(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with realtime_bridge(make_settings, models, speech) as (bridge, server):
        async with SimulatedCall(bridge.url, ACME, sample_rate=8000) as call:
            greeting_at = await call.secretary_speaks()
            await call.secretary_silent()
            assert "help" in (await speech.hear(after(call, greeting_at))).lower()
            asked = call.say(speech.say("Where are you located?", 8000))
            answer_at = await call.secretary_speaks(after_ms=asked + 500)
            await call.secretary_silent()
            assert "main street" in (await speech.hear(after(call, answer_at))).lower()
        record = await bridge.call_over(call.call_uuid)
    (session,) = server.sessions
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert {t["name"] for t in session["tools"]} == {"transfer_call", "take_message", "end_call", "lookup_knowledge"}
    assert "Acme Corporation" in session["instructions"] and "Billing" in session["instructions"]
    assert server.paths[0].startswith("/v1/realtime?model=gpt-realtime")
    assert record.turns[-1].brain == "openai_realtime" and "located" in record.turns[-1].caller_text.lower()
    assert record.turns[-1].secretary_text == LOCATED


async def test_16k_call_resamples_24k_pcm_and_transfers_through_esl(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with realtime_bridge(make_settings, models, speech) as (bridge, server):
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, sample_rate=16000, switch=bridge.switch) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            said = call.say(speech.say("I need to talk to billing.", 16000))
            announced = await call.secretary_speaks(after_ms=said + 500)
            await call.wait_closed(30)
            assert "billing" in (await speech.hear(after(call, announced))).lower()
        assert call.transfers == [("1003", "acme.example.com")]
        record = await bridge.call_over(call.call_uuid)
    assert server.sessions[0]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    (output,) = server.of_type("conversation.item.create")
    assert '"ok": true' in output["item"]["output"]
    assert record.outcome == "transfer" and record.outcome_destination == "1003"


async def test_barge_in_stops_playback_and_truncates_the_item(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    question, words = speech.say("Where are you located?", 8000), speech.say("Do you have parking?", 8000)
    async with realtime_bridge(make_settings, models, speech) as (bridge, server):
        async with SimulatedCall(bridge.url, ACME) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            asked = call.say(question)
            answer_at = await call.secretary_speaks(after_ms=asked + 500)
            await call.wait_until(answer_at + 1500)
            onset = call.say(words) + (sound_onset(words) or 0)
            await call.wait_until(onset + 1000)
            # the local server's VAD needs its own time to fire; what the engine adds after it is small
            assert call.stops and onset <= call.stops[-1] <= onset + 700, (onset, call.stops)
            parking_at = await call.secretary_speaks(after_ms=call.stops[-1] + 100)
            await call.secretary_silent()
            assert "parking" in (await speech.hear(after(call, parking_at))).lower()
        record = await bridge.call_over(call.call_uuid)
    (truncate,) = server.of_type("conversation.item.truncate")
    assert truncate["content_index"] == 0 and 1000 <= truncate["audio_end_ms"] <= 3000
    located = next(t for t in record.turns if t.secretary_text == LOCATED)
    assert located.heard_text is not None and LOCATED.startswith(located.heard_text) and located.heard_text


@pytest.mark.parametrize("mode", ["hang", "disconnect"])
async def test_failing_engine_apologises_and_transfers_to_the_fallback(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, mode: str
) -> None:
    async with realtime_bridge(make_settings, models, speech, reply_deadline_s=2.0) as (bridge, server):
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            server.mode = mode
            said = call.say(speech.say("Where are you located?", 8000))
            apology_at = await call.secretary_speaks(after_ms=said + 500)
            await call.wait_closed(30)
            assert "trouble" in (await speech.hear(after(call, apology_at))).lower()
        assert call.transfers == [("1001", "acme.example.com")]
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "transfer" and record.outcome_destination == "1001"
        assert bridge.counter("voiceai_provider_fallbacks", kind="realtime", provider="openai_realtime") == 1
