"""Playback modes against the module as it really is (PROTOCOLS §0): the community build plays nothing itself.
New secretaries default to `event`; a call configured for `module` that meets the community build is moved to
`event` mode by its first `play` event (nothing sent is lost or played twice), and `/health` and the call
record say so; a `play` event that arrives after a barge-in's `uuid_break` is not broadcast."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np
import pytest
import yaml

from bridge.protocol import EPOCH_KEY, StreamAudio
from freeswitch.stream_sim import SimulatedCall
from secretary.fusionpbx.dialplan import DialplanRequest, build_xml
from secretary.settings import Settings
from secretary.speech.audio import Pcm
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support.bridge import ACME, LiveBridge, live_bridge
from tests.support.speech import Speech
from tests.support.waiting import until
from tests.test_bridge_pipeline import heard_after

pytestmark = pytest.mark.timeout(120)


def tone() -> Pcm:
    return Pcm((np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2").tobytes(), 8000)


async def health(bridge: LiveBridge) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await reader.read(4096)
    writer.close()
    document: dict[str, Any] = json.loads(response.split(b"\r\n\r\n", 1)[1])
    return document


async def test_new_secretaries_and_the_shipped_examples_default_to_event_playback(fusionpbx_url: str) -> None:
    minimal = SecretaryConfig.model_validate(
        {"domain_uuid": ACME, "domain_name": "acme.example.com", "fallback_destination": "1001"}
    )
    assert minimal.playback_mode == "event"
    (acme,) = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())["secretaries"]
    assert SecretaryConfig.model_validate(acme).playback_mode == "event"
    request = DialplanRequest(UUID(ACME), "acme.example.com", "5000", "realtime", "1001")
    assert "STREAM_PLAYBACK" not in build_xml(request)  # the community build ignores it anyway
    module = DialplanRequest(UUID(ACME), "acme.example.com", "5000", "realtime", "1001", playback_module=True)
    assert "STREAM_PLAYBACK=true" in build_xml(module)
    connection = await asyncpg.connect(fusionpbx_url)
    try:
        default = await connection.fetchval(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = 'v_ai_secretaries' AND column_name = 'playback_mode'"
        )
    finally:
        await connection.close()
    assert default == "'event'::text"


async def test_module_mode_meeting_the_community_build_goes_on_in_event_mode(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, tmp_path: Path
) -> None:
    async with live_bridge(make_settings, models, playback_mode="module") as bridge:
        switch = bridge.switch
        assert switch is not None
        call = SimulatedCall(bridge.url, ACME, mode="event", switch=switch, temp_dir=tmp_path)
        async with call:
            greeting_at = await call.secretary_speaks(timeout_s=10)
            await call.secretary_silent()
            during = await health(bridge)
        assert "help" in (await speech.hear(heard_after(call, greeting_at))).lower()
        sent = [r.message for r in call.received if isinstance(r.message, StreamAudio)]
        assert len(sent) > 1  # 100 ms chunks until the first play event, then the rest of the greeting at once
        broadcast = [line.split()[2] for line in switch.commands_for("uuid_broadcast")]
        assert broadcast == list(call.announced)  # every file the module wrote, once, in order
        assert sum(Path(p).stat().st_size for p in broadcast) == sum(len(m.pcm) for m in sent)
        record = await bridge.call_over(call.call_uuid)
        assert record.usage.get("playback.event") == 1 and record.usage.get("playback.detected_event") == 1
        assert "playback.module" not in record.usage
    playback = during["playback"]
    assert playback["calls"] == {"module": 0, "event": 1} and playback["detected_event"] == 1
    assert playback["last_detected_at"] is not None


async def test_a_call_on_a_playback_build_stays_in_module_mode(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    async with live_bridge(make_settings, models, playback_mode="module", engine="echo") as bridge:
        assert bridge.switch is not None
        async with SimulatedCall(bridge.url, ACME, switch=bridge.switch) as call:
            call.say(tone())
            await call.secretary_speaks(timeout_s=10)
            during = await health(bridge)
        record = await bridge.call_over(call.call_uuid)
    assert record.usage.get("playback.module") == 1 and "playback.detected_event" not in record.usage
    assert during["playback"] == {"calls": {"module": 1, "event": 0}, "detected_event": 0, "last_detected_at": None}
    assert bridge.switch.commands_for("uuid_broadcast") == []


async def test_play_events_that_arrive_after_the_barge_in_are_not_played(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, tmp_path: Path
) -> None:
    """The module here takes 2.5 s to announce each file: the answer the caller cuts off is announced after the
    barge-in's `uuid_break`. Its files are of an older epoch: dropped (and deleted), never broadcast."""
    question, parking = speech.say("Where are you located?", 8000), speech.say("Do you have parking?", 8000)
    async with live_bridge(make_settings, models, playback_mode="event") as bridge:
        switch = bridge.switch
        assert switch is not None
        call = SimulatedCall(bridge.url, ACME, mode="event", switch=switch, temp_dir=tmp_path, play_delay_ms=2500)
        async with call:
            await call.secretary_speaks()
            await call.secretary_silent()
            asked = call.say(question)
            answered = await call.audio_received(after_ms=asked + 300)  # sent; its play events are still to come
            # The whole answer written (on a busy box its synthesis outlasts the first file): a barge-in on a
            # reply still being made, of which nothing was heard, would join both questions into one turn.
            session = bridge.server.sessions[call.call_uuid]
            await until(lambda: len(session.state.turns) == 1, within_s=30)
            call.say(parking)
            await call.wait_until(answered + 2000)
            assert call.stops, "the barge-in did not reach FreeSWITCH"
            stopped = call.stops[0]
            parking_at = await call.secretary_speaks(after_ms=stopped + 100)
            await call.secretary_silent()
        heard = (await speech.hear(heard_after(call, stopped))).lower()
        assert "parking" in heard and "main street" not in heard and "station" not in heard, heard
        audio = [r for r in call.received if isinstance(r.message, StreamAudio)]
        files = list(call.announced.items())
        assert len(files) == len(audio)
        broadcast = {line.split()[2] for line in switch.commands_for("uuid_broadcast")}
        answer = [(path, data) for (path, data), r in zip(files, audio, strict=True) if r.at_ms >= answered]
        cut = [path for path, data in answer if data[EPOCH_KEY] == 0]
        later = [path for path, data in files if data[EPOCH_KEY] == 1]
        assert cut and later and parking_at > stopped
        assert not broadcast & set(cut) and not any(Path(p).exists() for p in cut)
        assert set(later) <= broadcast
