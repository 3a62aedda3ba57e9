"""Realtime calls through the real `secretary_ai.lua` (with `voiceai/realtime.lua`), the real bridge and the
real ivr_service, on the simulated FreeSWITCH as PROTOCOLS.md §0 measured it: the stream connects in the
background and its failures come later as events, so only the script can notice them. Whatever happens to
the bridge — down at the start, refusing the call, never claiming it, killed or shutting down mid-call — the
call goes on turn-based (or, with the service down too, to the fallback destination): never silence. And
when the bridge is well, the script stays out of the way: the bridge transfers over ESL, or without ESL asks
the script to.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.server import ServerConnection, serve

from freeswitch.caller import CallerAction, Press, Say
from freeswitch.esl_server_sim import EslServerSimulator
from freeswitch.lua_sim import CallResult, FreeSwitchSim, Transfer
from freeswitch.stream_sim import SimulatedCall
from secretary.calls.models import CallRecord
from secretary.calls.prompts import ENGLISH
from secretary.settings import Settings
from secretary.speech.audio import wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES, REDIS_URL
from tests.support.bridge import ACME, bridge_process, live_bridge
from tests.support.live_service import live_ivr_service
from tests.support.lua_calls import (
    ACME_NAME,
    FALLBACK_PROMPT_TEXT,
    acme_variables,
    assert_clean,
    assert_fell_back,
    reply,
    routes,
    write_fallback_prompt,
)
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(180)

BILLING = Transfer("1003", "XML", ACME_NAME)


@pytest.fixture(scope="module")
def fallback_prompt(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fallback_prompt(wav_bytes(speech.say(FALLBACK_PROMPT_TEXT)), tmp_path_factory.mktemp("sounds"))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def realtime_call(
    ivr_url: str,
    bridge_url: str,
    fallback_prompt: Path,
    *,
    caller: Iterable[CallerAction] = (),
    switch: EslServerSimulator | None = None,
    token: str | None = None,
    lua_version: str = "lua53",
    community_build: Path | None = None,
    **variables: str,
) -> FreeSwitchSim:
    """A call to acme's realtime entry, as `dialplan/secretary-realtime.xml` sets it up (8 kHz);
    `community_build`: the module is the community build, writing its files there (else a playback build)."""
    values = acme_variables(
        ivr_url,
        fallback_prompt,
        voiceai_mode="realtime",
        voiceai_bridge_url=bridge_url,
        voiceai_sample_rate="8000",
        **variables,
    )
    if token is not None:
        values["STREAM_EXTRA_HEADERS"] = json.dumps({"Authorization": f"Bearer {token}"}, separators=(",", ":"))
    loop = asyncio.get_running_loop()
    return FreeSwitchSim(
        variables=values,
        caller=list(caller),
        switch=switch,
        loop=loop,
        lua_version=lua_version,
        stream_mode="module" if community_build is None else "event",
        temp_dir=community_build,
    )


async def claimed(call: SimulatedCall) -> None:
    """The bridge has claimed the call and the caller's audio flows."""
    assert await call.wait_connected()
    await call.wait_until(400)
    assert {"type": "voiceai.claimed", "call_uuid": call.call_uuid} in call.json_messages()


def start_request(result: CallResult) -> dict[str, Any]:
    return dict(json.loads(result.exchanges[0].request_body))


def saved(settings: Settings, call_uuid: str) -> CallRecord:
    return CallRecord.model_validate_json((settings.data_dir / "calls" / ACME / f"{call_uuid}.json").read_text())


def turn_based_after(result: CallResult, why: str) -> None:
    """The script gave up on the stream for `why`, and the service took the call to billing."""
    assert_clean(result)
    assert why in result.log_text(), result.log_text()
    assert result.transfer == BILLING
    assert [name for name, _ in routes(result)] == ["start", "dtmf", "end"]


# -- the bridge can't take the call: turn-based from the start ------------------------------------------


@pytest.mark.parametrize("lua_version", ["lua52", "lua53", "lua54"])
async def test_bridge_and_service_down_the_caller_goes_to_the_front_desk(
    fallback_prompt: Path, lua_version: str
) -> None:
    ivr_url, bridge_url = f"http://127.0.0.1:{closed_port()}", f"ws://127.0.0.1:{closed_port()}"
    result = await asyncio.to_thread(realtime_call(ivr_url, bridge_url, fallback_prompt, lua_version=lua_version).run)
    assert_fell_back(result, fallback_prompt)
    assert "the stream failed (6 Connection refused (system error 111)) before the bridge claimed" in result.log_text()


async def test_bridge_down_at_the_start(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    settings = make_settings(redis_url=REDIS_URL)
    bridge_url = f"ws://127.0.0.1:{closed_port()}"
    with live_ivr_service(settings, models) as (url, _runtime):
        sim = realtime_call(url, bridge_url, fallback_prompt, caller=[Say(speech.say("Put me through to billing."))])
        result = await asyncio.to_thread(sim.run)
    assert_clean(result)
    assert "before the bridge claimed the call" in result.log_text()
    assert "you have reached" in (await speech.hear(result.played[0].pcm())).lower()  # the full greeting
    assert "resumed_from" not in start_request(result)
    assert result.transfer == BILLING and [name for name, _ in routes(result)] == ["start", "turns", "end"]
    record = saved(settings, sim.uuid)
    assert (record.transport, record.outcome) == ("turn", "transfer")


NOT_LOADED = "uuid_audio_stream did not start: -ERR uuid_audio_stream Command not found!"


@pytest.mark.parametrize(
    ("loaded", "channel", "why"),
    [
        (False, {}, NOT_LOADED),  # FusionPBX: the module not enabled in Advanced › Modules
        (True, {"voiceai_bridge_url": "http://127.0.0.1:8085"}, "voiceai_bridge_url is not a plain ws(s)://host:port"),
        (True, {"voiceai_sample_rate": "44100"}, "voiceai_sample_rate must be 8000 or 16000"),
        (True, {"domain_uuid": ""}, "a realtime call needs the channel's domain_uuid"),
    ],
)
async def test_a_call_freeswitch_cant_stream_goes_turn_based_at_once(
    make_settings: Callable[..., Settings],
    models: LocalModels,
    fallback_prompt: Path,
    loaded: bool,
    channel: dict[str, str],
    why: str,
) -> None:
    """A FreeSWITCH without mod_audio_stream, or a channel no stream can be made from: no stream, and the
    turn-based call from its greeting."""
    settings = make_settings(redis_url=REDIS_URL)
    with live_ivr_service(settings, models) as (url, _runtime):
        sim = realtime_call(url, f"ws://127.0.0.1:{closed_port()}", fallback_prompt, caller=[Press("1003")])
        sim.audio_stream_loaded = loaded
        sim.variables.update(channel)
        result = await asyncio.to_thread(sim.run)
    turn_based_after(result, why)
    assert sim.streams == [] and "resumed_from" not in start_request(result)


@pytest.mark.parametrize("refusal", ["bad-token", "secretary-disabled-on-the-bridge"])
async def test_bridge_refusing_the_call(
    make_settings: Callable[..., Settings], models: LocalModels, fallback_prompt: Path, tmp_path: Path, refusal: str
) -> None:
    settings = make_settings(redis_url=REDIS_URL)
    bridge_options: dict[str, Any] = {"auth_token": "the-right-token"}
    if refusal == "secretary-disabled-on-the-bridge":
        document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
        document["secretaries"][0]["enabled"] = False
        (tmp_path / "disabled.yaml").write_text(yaml.safe_dump(document))
        bridge_options["secretaries_file"] = tmp_path / "disabled.yaml"
    token = "a-wrong-token" if refusal == "bad-token" else "the-right-token"
    async with live_bridge(make_settings, models, with_esl=False, redis_url=REDIS_URL, **bridge_options) as bridge:
        with live_ivr_service(settings, models) as (url, _runtime):
            sim = realtime_call(url, bridge.url, fallback_prompt, caller=[Press("1003")], token=token)
            result = await asyncio.to_thread(sim.run)
    turn_based_after(result, "was closed (1008 ")
    reason = "unauthorized" if refusal == "bad-token" else "secretary_disabled"
    assert sim.stream is not None and sim.stream.close_code == 1008 and reason in sim.stream.close_reason
    assert "resumed_from" not in start_request(result)
    assert bridge.counter("voiceai_calls_started", transport="realtime") == 0


async def test_a_server_that_never_claims_the_call(
    make_settings: Callable[..., Settings], models: LocalModels, fallback_prompt: Path
) -> None:
    """Something listens (an old bridge, a wrong port) but never claims the call: after the claim timeout
    the script stops the stream and the call goes on turn-based."""
    closes: list[tuple[int | None, str]] = []

    async def mute(ws: ServerConnection) -> None:
        async for _ in ws:  # reads everything, says nothing
            pass
        closes.append((ws.close_code, ws.close_reason))

    settings = make_settings(redis_url=REDIS_URL)
    async with serve(mute, "127.0.0.1", 0) as server:
        bridge_url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}"
        with live_ivr_service(settings, models) as (url, _runtime):
            sim = realtime_call(
                url, bridge_url, fallback_prompt, caller=[Press("1003")], voiceai_claim_timeout_ms="600"
            )
            result = await asyncio.to_thread(sim.run)
    turn_based_after(result, "the bridge did not claim the call within 600 ms")
    assert sim.stream is not None and 0 < sim.stream.media_ms <= 600  # it connected; audio flowed till the stop
    assert closes == [(1000, "Normal closure")]  # `uuid_audio_stream … stop`


# -- the bridge goes away mid-call: turn-based from where it was ----------------------------------------


async def test_bridge_shutting_down_mid_call(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    async with live_bridge(make_settings, models, engine="echo", redis_url=REDIS_URL) as bridge:
        settings = bridge.runtime.settings
        with live_ivr_service(settings, models) as (url, _runtime):
            sim = realtime_call(url, bridge.url, fallback_prompt, caller=[Press("1003")], switch=bridge.switch)
            running = asyncio.create_task(asyncio.to_thread(sim.run))
            call = await sim.wait_stream()
            await claimed(call)
            await bridge.server.close()  # a deploy: every call is ended, its record saved
            result = await running
    turn_based_after(result, "the stream was closed (1000 shutdown) mid-call")
    assert start_request(result)["resumed_from"] == "realtime"
    assert reply(result.exchanges[0])["say"]["text"] == ENGLISH.resumed
    assert "moment" in (await speech.hear(result.played[0].pcm())).lower()
    record = saved(settings, sim.uuid)  # one record for the whole call: the bridge's part, then the turns
    assert (record.transport, record.outcome, record.outcome_destination) == ("realtime", "transfer", "1003")
    assert [t.caller_text for t in record.turns] == ["DTMF 1003"] and record.turns[0].index == 1
    assert record.usage["fallbacks.transport"] == 1
    assert record.duration_ms >= 400  # from the realtime start


async def test_bridge_killed_mid_call(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    settings = make_settings(redis_url=REDIS_URL)
    with bridge_process(settings) as (bridge_url, process), live_ivr_service(settings, models) as (url, _runtime):
        sim = realtime_call(url, bridge_url, fallback_prompt, caller=[Press("1003")])
        running = asyncio.create_task(asyncio.to_thread(sim.run))
        call = await sim.wait_stream()
        await claimed(call)
        process.kill()  # no close frame, no record: the connection just breaks
        result = await running
    turn_based_after(result, "mid-call, with no action from the bridge")
    assert sim.stream is not None and sim.stream.close_code == 1006
    assert start_request(result)["resumed_from"] == "realtime"
    assert "moment" in (await speech.hear(result.played[0].pcm())).lower()
    record = saved(settings, sim.uuid)  # the dead bridge's state was replaced, not continued
    assert (record.transport, record.outcome) == ("turn", "transfer") and record.usage["fallbacks.transport"] == 1


# -- the bridge has the call: the script only keeps it company ----------------------------------------------


async def test_a_realtime_call_the_bridge_transfers_over_esl(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    async with live_bridge(make_settings, models, redis_url=REDIS_URL) as bridge:
        assert bridge.switch is not None
        sim = realtime_call("http://127.0.0.1:1", bridge.url, fallback_prompt, switch=bridge.switch)
        running = asyncio.create_task(asyncio.to_thread(sim.run))
        call = await sim.wait_stream()
        await call.secretary_speaks()
        await call.secretary_silent()
        call.say(speech.say("Please put me through to billing.", 8000))
        result = await running
        record = await bridge.call_over(sim.uuid)
        assert bridge.switch.commands_for("uuid_transfer") == [f"uuid_transfer {sim.uuid} 1003 XML {ACME_NAME}"]
    assert_clean(result)
    assert "the bridge claimed the call" in result.log_text()
    assert result.transfer == BILLING and result.exchanges == []  # the turn-based service was never asked
    assert (call.close_code, call.close_reason) == (1000, "finished")
    assert (record.transport, record.outcome) == ("realtime", "transfer")


async def test_without_esl_the_script_carries_out_the_bridges_transfer(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    async with live_bridge(make_settings, models, with_esl=False, redis_url=REDIS_URL) as bridge:
        sim = realtime_call("http://127.0.0.1:1", bridge.url, fallback_prompt)
        running = asyncio.create_task(asyncio.to_thread(sim.run))
        call = await sim.wait_stream()
        await call.secretary_speaks()
        await call.secretary_silent()
        call.say(speech.say("Please put me through to billing.", 8000))
        result = await running
        record = await bridge.call_over(sim.uuid)
        assert bridge.counter("voiceai_esl_failures", command="uuid_transfer") == 1
    assert_clean(result)
    assert "the bridge asked for a transfer to 1003" in result.log_text()
    assert result.transfer == BILLING and result.exchanges == []
    assert (record.transport, record.outcome) == ("realtime", "transfer")


async def test_keys_in_a_realtime_call_the_script_hosts_reach_the_bridge_over_esl(
    make_settings: Callable[..., Settings], models: LocalModels, fallback_prompt: Path, tmp_path: Path
) -> None:
    """The shipped realtime setup (the community build, event playback; the script keeps the call in its
    `session:sleep` loop, which takes the keys, so FreeSWITCH fires `DTMF`): keys mean what they mean in v1,
    and the bridge carries them out over ESL."""
    async with live_bridge(make_settings, models, playback_mode="event", redis_url=REDIS_URL) as bridge:
        assert bridge.switch is not None
        sim = realtime_call(
            "http://127.0.0.1:1", bridge.url, fallback_prompt, switch=bridge.switch, community_build=tmp_path
        )
        running = asyncio.create_task(asyncio.to_thread(sim.run))
        call = await sim.wait_stream()
        await claimed(call)
        await call.secretary_speaks()
        await call.press("1002#")
        result = await running
        record = await bridge.call_over(sim.uuid)
        assert bridge.switch.commands_for("uuid_transfer") == [f"uuid_transfer {sim.uuid} 1002 XML {ACME_NAME}"]
    assert_clean(result)
    assert result.transfer == Transfer("1002", "XML", ACME_NAME) and result.exchanges == []
    assert (record.outcome, record.outcome_destination) == ("transfer", "1002")
    assert record.turns[-1].caller_text == "DTMF 1002" and record.turns[-1].brain == "dtmf"
    assert bridge.switch.commands_for("uuid_broadcast")  # the greeting was heard through broadcasts
