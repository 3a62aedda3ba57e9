"""Deepgram inside the realtime pipeline, end to end through the FreeSWITCH simulator and the real bridge:
the caller's frames go to the local Deepgram endpoint (through the official SDK), the turn ends on Deepgram's
`speech_final` / `UtteranceEnd` (no Whisper at all), KeepAlive holds the stream while the caller is silent;
a stream that fails mid-call hands over to our VAD and Whisper without losing the caller's words, and the
filler covers the wait."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from freeswitch.stream_sim import SimulatedCall
from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.providers.conftest import PATIENT_FALLBACK, PATIENT_LLM
from tests.support.bridge import ACME, live_bridge
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_servers import Fault
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(120)
GREETING = "Acme, this is Ava. How can I help?"


def secretaries(tmp_path: Path, stt: list[dict[str, Any]]) -> Path:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    acme = document["secretaries"][0]
    acme["greeting"] = GREETING
    acme["providers"] = {"stt": stt}
    document["secretaries"] = [acme]
    path = tmp_path / "secretaries.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def after(call: SimulatedCall, start_ms: int) -> Pcm:
    return Pcm(call.heard().data[2 * call.rate * start_ms // 1000 :], call.rate)


def deepgram(url: str, **options: Any) -> dict[str, Any]:
    return {"name": "deepgram", "base_url": url, "api_key_env": "TEST_DEEPGRAM_KEY", "options": options}


async def test_deepgram_ends_the_turn_and_keeps_the_stream_alive(
    make_settings: Callable[..., Settings],
    models: LocalModels,
    speech: Speech,
    fake_deepgram: FakeDeepgram,
    tmp_path: Path,
) -> None:
    fake_deepgram.idle_timeout_s = 4.0  # Deepgram's own is 10 s: without KeepAlive the stream would close
    config = secretaries(tmp_path, [deepgram(fake_deepgram.url, encoding="mulaw", keepalive_s=1.0)])
    question = speech.say("Where are you located?", 8000)
    # Deepgram (here Whisper behind its protocol) ends the turn, however loaded the machine
    patient = PATIENT_FALLBACK | {"late_after_s": 15.0, "stt_stall_s": 20.0}
    async with live_bridge(
        make_settings, models, secretaries_file=config, fallback=patient, llm=PATIENT_LLM, reply_deadline_s=30
    ) as bridge:
        async with SimulatedCall(bridge.url, ACME) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            await call.wait_until(call.media_ms + 6000)  # the caller thinks for a while: only KeepAlives go out
            answer_at = await call.secretary_speaks(after_ms=call.say(question) + 300)
            assert "main street" in await speech.heard_until(call, answer_at, "main street")
        record = await bridge.call_over(call.call_uuid)
    (request,) = fake_deepgram.requests
    assert request["query"]["encoding"] == "mulaw" and request["query"]["sample_rate"] == "8000"  # the call rate
    assert fake_deepgram.keepalives >= 2 and fake_deepgram.closed_idle == 0
    (turn,) = record.turns
    assert "located" in turn.caller_text.lower() and "Main Street" in turn.secretary_text
    usage = record.usage
    assert usage["stt.deepgram.requests"] == 1 and "stt.whisper.requests" not in usage  # Deepgram ended the turn
    seconds = usage["stt.deepgram.audio_seconds"]
    assert 1.0 < seconds < record.duration_ms / 1000 - 3  # the silence was not sent
    assert "fillers" not in usage


@pytest.mark.parametrize("fault", [Fault.DISCONNECT, Fault.STALL])
async def test_deepgram_lost_mid_utterance_whisper_answers_after_the_filler(
    fault: Fault,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    speech: Speech,
    fake_deepgram: FakeDeepgram,
    tmp_path: Path,
) -> None:
    config = secretaries(tmp_path, [deepgram(fake_deepgram.url)])
    question = speech.say("Where are you located?", 8000)
    fallback = PATIENT_FALLBACK | {"stt_stall_s": 1.0, "late_after_s": 0.6}
    async with live_bridge(
        make_settings, models, secretaries_file=config, fallback=fallback, llm=PATIENT_LLM, reply_deadline_s=30
    ) as bridge:
        async with SimulatedCall(bridge.url, ACME) as call:
            await call.secretary_speaks()
            await call.secretary_silent()
            fake_deepgram.fault = fault
            asked = call.say(question)
            await call.secretary_speaks(after_ms=asked + 300)
            heard = await speech.heard_until(call, asked, "main street")
            benched = bridge.runtime.providers.health.unhealthy()  # (its probe may bring it back after the call)
            assert any(key.startswith("stt:deepgram:") for key in benched)  # the next calls start without it
        record = await bridge.call_over(call.call_uuid)
    assert "main street" in heard and heard.count("main street") == 1, heard
    (turn,) = record.turns
    assert "located" in turn.caller_text.lower()
    usage = record.usage
    assert usage["failures.stt.deepgram"] == 1 and usage["fallbacks.stt"] == 1
    assert usage["stt.whisper.requests"] == 1 and usage["skipped.stt.deepgram"] == 1  # the VAD's audio, locally
    if fault is Fault.STALL:  # the stream went quiet: the wait for its end of turn is covered by the filler
        assert "moment" in heard.split("main street")[0] and usage["fillers"] == 1, heard  # the filler first
