"""How realtime calls end and who FreeSWITCH hears it from: ESL (`uuid_kill`, `uuid_transfer`), the stream
itself when ESL is down, `event` playback mode (`::play` → `uuid_broadcast`, barge-in → `uuid_break`),
caller silence, the maximum duration, and a message taken."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from freeswitch.stream_sim import SimulatedCall, sound_onset
from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from tests.support import databases
from tests.support.bridge import ACME, live_bridge
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(120)


def after(call: SimulatedCall, start_ms: int) -> Pcm:
    heard = call.heard()
    return Pcm(heard.data[2 * call.rate * start_ms // 1000 :], call.rate)


async def test_goodbye_plays_the_farewell_then_uuid_kill_and_echo_is_no_barge_in(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models) as bridge:
        assert bridge.switch is not None
        # the line echoes the secretary back 35 dB down: that must not count as the caller interrupting
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch, echo_db=-35) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            assert call.stops == []
            said = call.say(speech.say("That's all, thank you. Goodbye.", 8000))
            farewell_at = await call.secretary_speaks(after_ms=said + 500)
            await call.wait_closed(30)
        assert call.hangup_cause == "NORMAL_CLEARING"
        assert "goodbye" in (await speech.hear(after(call, farewell_at))).lower()
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "hangup"
        assert bridge.counter("voiceai_barge_ins", mode="module") == 0
        kill = bridge.switch.commands_for("uuid_kill")
        assert kill == [f"uuid_kill {call.call_uuid} NORMAL_CLEARING"]


async def test_without_esl_the_transfer_goes_through_the_stream(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models, with_esl=False) as bridge:
        async with SimulatedCall(bridge.url, ACME) as call:
            await call.secretary_speaks()  # ESL is down, the call goes on
            await call.secretary_silent()
            call.say(speech.say("Please put me through to billing.", 8000))
            await call.wait_closed(30)
        (action,) = [m for m in call.json_messages() if m.get("type") == "voiceai.action"]
        assert action == {
            "type": "voiceai.action",
            "call_uuid": call.call_uuid,
            "action": "transfer",
            "destination": "1003",
            "context": "acme.example.com",
        }
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "transfer"
        assert bridge.counter("voiceai_esl_failures", command="uuid_transfer") == 1


async def test_event_mode_plays_by_uuid_broadcast_and_barges_in_with_uuid_break(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, tmp_path: Path
) -> None:
    files = tmp_path / "fs-temp"
    files.mkdir()
    question, words = speech.say("Where are you located?", 8000), speech.say("Do you have parking?", 8000)
    async with live_bridge(make_settings, models, playback_mode="event") as bridge:
        switch = bridge.switch
        assert switch is not None
        async with SimulatedCall(bridge.url, ACME, mode="event", switch=switch, temp_dir=files) as call:
            greeting_at = await call.secretary_speaks()
            await call.secretary_silent()
            assert "help" in (await speech.hear(after(call, greeting_at))).lower()
            asked = call.say(question)
            answer_at = await call.secretary_speaks(after_ms=asked + 500)
            await call.wait_until(answer_at + 1500)
            onset = call.say(words) + (sound_onset(words) or 0)
            await call.wait_until(onset + 1000)
            assert call.stops and onset <= call.stops[-1] <= onset + 300, (onset, call.stops)
            parking_at = await call.secretary_speaks(after_ms=call.stops[-1] + 100)
            await call.secretary_silent()
            assert "parking" in (await speech.hear(after(call, parking_at))).lower()
        broadcasts = switch.commands_for("uuid_broadcast")
        assert len(broadcasts) >= 3 and all(b.endswith(" aleg") and call.call_uuid in b for b in broadcasts)
        assert switch.commands_for("uuid_break") == [f"uuid_break {call.call_uuid} all"]
        await bridge.call_over(call.call_uuid)
        assert bridge.counter("voiceai_barge_ins", mode="event") == 1


async def test_a_silent_caller_is_asked_then_said_goodbye_to(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models, caller_silence_s=1.5) as bridge:
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            greeting_at = await call.secretary_speaks()
            await call.wait_closed(60)
            heard = (await speech.hear(after(call, greeting_at))).lower()  # the greeting, the prompt, goodbye
            assert "still there" in heard and "goodbye" in heard.split("still there", 1)[1], heard
        assert call.hangup_cause == "NORMAL_CLEARING"
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "caller_silent"


async def test_the_maximum_duration_ends_the_call_at_the_fallback(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models, engine="echo", max_call_seconds=2) as bridge:
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            await call.wait_closed(30)
        assert call.transfers == [("1001", "acme.example.com")]
        assert "colleague" in (await speech.hear(after(call, 1900))).lower()
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "transfer" and record.outcome_destination == "1001"


async def test_a_message_is_taken_after_the_tone(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models) as bridge:
        assert bridge.switch is not None
        caller = {"caller_id_number": "5550199", "caller_id_name": "Robin Banks", "sample_rate": 8000}
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch, metadata=caller) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            # the message's details (for sales, the caller id's name and number) read back, then confirmed
            for text in ("I would like to leave a message for sales.", "Yes, that is right."):
                call.say(speech.say(text, 8000))
                await call.secretary_speaks(after_ms=call.media_ms + 300)
                await call.secretary_silent(quiet_ms=1000)  # the read-back pauses between the digits
            call.say(speech.say("Please call Jane back about the invoice.", 8000))
            await call.wait_closed(40)
        assert call.hangup_cause == "NORMAL_CLEARING"
        record = await bridge.call_over(call.call_uuid)
    assert record.outcome == "message"
    assert "a message for Sales from Robin Banks" in record.turns[-3].secretary_text
    message = record.turns[-1]
    # the message is the caller's words (Whisper's spelling of "invoice" varies with where the VAD cut)
    assert message.brain == "message" and {"call", "back"} <= set(re.findall(r"[a-z]+", message.caller_text.lower()))


async def test_a_stream_naming_a_call_of_another_domain_is_refused(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    async with live_bridge(make_settings, models, engine="echo") as bridge:
        assert bridge.switch is not None
        # the channel is globex's; the stream claims it for acme (whose token it may hold)
        call = SimulatedCall(
            bridge.url, ACME, switch=bridge.switch, channel_domain="d0000000-0002-4000-8000-000000000002"
        )
        await call.start()
        await call.wait_closed(10)
        await call.hang_up()
        assert call.close_code == 1008 and "wrong_domain" in call.close_reason
        assert bridge.switch.commands_for("uuid_getvar") == [f"uuid_getvar {call.call_uuid} domain_uuid"]
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0


@pytest.mark.parametrize("channel_domain", [ACME, databases.GLOBEX], ids=["own-channel", "another-domains-channel"])
async def test_a_call_admitted_while_esl_was_down_gets_esl_once_freeswitch_vouches_for_it(
    make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path, channel_domain: str
) -> None:
    """ESL down at the start: the call is served on the call-state store's word, without ESL. When ESL is
    back, FreeSWITCH is asked whose channel it is: the call's own domain gets event playback over ESL; a
    stream that named another domain's channel is closed, and nothing was ever sent to that channel."""
    files = tmp_path / "fs-temp"
    files.mkdir()
    async with live_bridge(
        make_settings, models, with_esl=False, esl_later=True, engine="echo", playback_mode="event"
    ) as bridge:
        switch, esl = bridge.switch, bridge.esl
        assert switch is not None and esl is not None and not esl.connected
        call = SimulatedCall(
            bridge.url, ACME, mode="event", switch=switch, temp_dir=files, channel_domain=channel_domain
        )
        async with call:
            await call.wait_until(600)  # served: the echo engine's audio announced, nobody to broadcast it
            await switch.start(port=switch.port)
            assert await esl.wait_connected(10)
            if channel_domain == ACME:
                tone = Pcm((np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2").tobytes(), 8000)
                said = call.say(tone)
                await call.secretary_speaks(after_ms=said, timeout_s=20)  # the echo, played by uuid_broadcast
                assert all(call.call_uuid in b for b in switch.commands_for("uuid_broadcast"))
            else:
                await call.wait_closed(20)
                assert call.close_code == 1008
                assert switch.commands_for("uuid_broadcast") == []
            assert switch.commands_for("uuid_getvar") == [f"uuid_getvar {call.call_uuid} domain_uuid"]
