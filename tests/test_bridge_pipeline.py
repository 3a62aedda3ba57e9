"""End to end through the FreeSWITCH simulator: real speech in (Piper), the offline pipeline, real speech out
(Whisper transcribes what the caller heard), ESL call control at the simulated event socket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from freeswitch.stream_sim import SimulatedCall, sound_end, sound_onset
from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from tests.support.bridge import ACME, live_bridge
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(120)
# A barge-in stops the secretary while the caller is still saying the first words (~250 ms of speech for the VAD,
# then the stop; ~280 ms on a real FreeSWITCH, as measured for issue 11): asserted with a margin a loaded box
# meets (820 ms seen at load 5), not as a timing target.
STOP_BOUND_MS = 1500


def heard_after(call: SimulatedCall, start_ms: int, until_ms: int | None = None) -> Pcm:
    heard = call.heard()
    offset = 2 * call.rate * start_ms // 1000
    end = None if until_ms is None else 2 * call.rate * until_ms // 1000
    return Pcm(heard.data[offset:end], heard.sample_rate)


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_caller_asks_and_hears_the_answer(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, rate: int, tmp_path: Path
) -> None:
    question = speech.say("Where are you located?", rate)  # synthesised before the call, heard after it: on a
    # busy box Piper or Whisper mid-call kept the caller silent long enough for the silence policy to hang up
    async with live_bridge(make_settings, models) as bridge:
        async with SimulatedCall(bridge.url, ACME, sample_rate=rate) as call:
            greeting_at = await call.secretary_speaks()
            await call.secretary_silent()
            asked_at = call.say(question)
            answer_at = await call.secretary_speaks(after_ms=asked_at + 500)
            await call.secretary_silent()
            call.write_heard(tmp_path / "heard.wav")
        greeting = await speech.hear(heard_after(call, greeting_at, until_ms=asked_at))
        assert "corporation" in greeting.lower() and "help" in greeting.lower(), greeting
        answer = await speech.hear(heard_after(call, answer_at))
        assert "main street" in answer.lower(), answer
    record = await bridge.call_over(call.call_uuid)
    assert record.transport == "realtime"
    assert "located" in record.turns[0].caller_text.lower()
    assert "Main Street" in record.turns[0].secretary_text
    assert record.turns[0].total_ms is not None


async def test_transfer_request_ends_in_uuid_transfer(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models) as bridge:
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            call.say(speech.say("Please put me through to billing.", 8000))
            await call.wait_closed(30)
        assert call.transfers == [("1003", "acme.example.com")]
        expected = f"uuid_transfer {call.call_uuid} 1003 XML acme.example.com"
        assert bridge.switch.commands_for("uuid_transfer") == [expected]
        record = await bridge.call_over(call.call_uuid)
        assert record.outcome == "transfer" and record.outcome_destination == "1003"
        # the transfer announcement played before the transfer
        heard = await speech.hear(heard_after(call, 0))
        assert "billing" in heard.lower()


async def test_barge_in_stops_playback_while_the_caller_speaks(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    # synthesised before the call: Piper on the event loop would stall the simulated line mid-measurement
    phrases = {
        text: speech.say(text, 8000) for text in ("Sorry, where are you located?", "Thanks. Do you have parking?")
    }

    async def interrupt(call: SimulatedCall, text: str) -> tuple[int, int]:
        """Speak over the secretary; returns (speech onset, playback stop) in media ms."""
        # while it is audible: a loaded box may leave a gap between a reply's first clause and the rest
        await call.secretary_speaks(after_ms=call.media_ms)
        words = phrases[text]
        onset = call.say(words) + (sound_onset(words) or 0)
        stops_before = len(call.stops)
        await call.wait_until(onset + 1000)
        assert len(call.stops) > stops_before, "the secretary never stopped talking"
        stopped = call.stops[stops_before]
        heard = call.heard()
        last_sound = sound_end(Pcm(heard.data[: 2 * 8000 * (stopped + 200) // 1000], 8000), onset - 500)
        assert last_sound is not None and last_sound <= stopped + 20  # nothing more played after the stop
        return onset, stopped

    async with live_bridge(make_settings, models) as bridge:
        async with SimulatedCall(bridge.url, ACME) as call:
            greeting_at = await call.secretary_speaks()
            await call.wait_until(greeting_at + 1200)
            onset, stopped = await interrupt(call, "Sorry, where are you located?")
            assert onset <= stopped <= onset + STOP_BOUND_MS, (onset, stopped)

            answer_at = await call.secretary_speaks(after_ms=stopped + 100)
            await call.wait_until(answer_at + 1500)
            onset, stopped = await interrupt(call, "Thanks. Do you have parking?")
            assert onset <= stopped <= onset + STOP_BOUND_MS, (onset, stopped)

            parking_at = await call.secretary_speaks(after_ms=stopped + 100)
            assert "parking" in await speech.heard_until(call, parking_at, "parking")
        record = await bridge.call_over(call.call_uuid)
        assert bridge.counter("voiceai_barge_ins", mode="module") == 2
    assert len(record.turns) == 2
    located, parking = record.turns
    assert "Main Street" in located.secretary_text
    assert located.heard_text is not None and 0 < len(located.heard_text) < len(located.secretary_text)
    assert located.secretary_text.startswith(located.heard_text)
    assert "parking" in parking.caller_text.lower() and parking.heard_text is None


def test_sound_onset_helper() -> None:
    pcm = Pcm(bytes(320) + b"\xff\x7f" * 160, 8000)
    assert sound_onset(pcm) == 20 and sound_end(pcm) == 40
