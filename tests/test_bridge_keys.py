"""Keys in realtime calls: FreeSWITCH's `DTMF` events (over ESL, for the bridge's own calls) mean what they mean
in the turn-based mode. A key stops the secretary at once, more may follow (1.5 s apart, '#' ends), then the
secretary answers: a directory extension or "0" puts the caller through, anything else is asked again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from freeswitch.stream_sim import SimulatedCall, sound_end
from secretary.calls.prompts import ENGLISH
from secretary.conversation.actions import ActionType
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support.bridge import ACME, live_bridge
from tests.support.speech import Speech
from tests.test_bridge_pipeline import heard_after

pytestmark = pytest.mark.timeout(120)


async def test_keys_during_the_greeting_cut_it_off_and_an_extension_transfers(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models) as bridge:
        switch = bridge.switch
        assert switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=switch) as call:
            greeting_at = await call.secretary_speaks()
            await call.wait_until(greeting_at + 1000)
            assert call.playing
            pressed = await call.press("1002")  # no '#': the entry ends 1.5 s after the last key
            assert call.stops and pressed <= call.stops[0] <= pressed + 300, (pressed, call.stops)
            stopped = call.stops[0]
            assert (sound_end(heard_after(call, 0), greeting_at) or 0) <= stopped + 20
            reply_at = await call.secretary_speaks(after_ms=stopped + 100)
            assert reply_at >= pressed + 3 * 200 + 1500  # after the wait for a fifth key
            await call.wait_closed(30)
        assert "sales" in (await speech.hear(heard_after(call, reply_at))).lower()
        assert call.transfers == [("1002", "acme.example.com")]
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "transfer" and record.outcome_destination == "1002"
        (keys,) = record.turns
        assert keys.caller_text == "DTMF 1002" and keys.brain == "dtmf"
        assert keys.secretary_text == "Putting you through to Sales."
        assert keys.action.type is ActionType.TRANSFER and keys.action.destination == "1002"
        assert bridge.counter("voiceai_barge_ins", mode="module") == 1


async def test_zero_goes_to_the_fallback_in_event_mode(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, tmp_path: Path
) -> None:
    async with live_bridge(make_settings, models, playback_mode="event") as bridge:
        switch = bridge.switch
        assert switch is not None
        call = SimulatedCall(bridge.url, ACME, mode="event", switch=switch, temp_dir=tmp_path)
        async with call:
            await call.secretary_speaks()
            await call.secretary_silent()
            pressed = await call.press("0#")
            reply_at = await call.secretary_speaks(after_ms=pressed)
            assert reply_at < pressed + 1500  # '#' ended the entry: no wait for more keys
            await call.wait_closed(30)
        # Whisper tiny hears this short 8 kHz line as "putting you to now" or "putting me through now" at times
        assert "putting" in (await speech.hear(heard_after(call, reply_at))).lower()
        assert call.transfers == [("1001", "acme.example.com")]
        assert switch.commands_for("uuid_break") == []  # nothing was playing when the keys came
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome_destination == "1001" and record.turns[-1].caller_text == "DTMF 0"
        assert record.turns[-1].secretary_text == ENGLISH.operator


async def test_an_invalid_entry_is_asked_again_and_the_call_goes_on(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    billing = speech.say("Please put me through to billing.", 8000)
    async with live_bridge(make_settings, models) as bridge:
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            pressed = await call.press("9#")
            reply_at = await call.secretary_speaks(after_ms=pressed)
            await call.secretary_silent()
            assert "not a valid choice" in (await speech.hear(heard_after(call, reply_at))).lower()
            assert call.transfers == []
            call.say(billing)
            await call.wait_closed(30)
        assert call.transfers == [("1003", "acme.example.com")]
        record = await bridge.call_over(call.call_uuid)
    keys, spoken = record.turns
    assert keys.caller_text == "DTMF 9" and keys.action.type is ActionType.CONTINUE
    assert "billing" in spoken.caller_text.lower() and spoken.action.destination == "1003"
