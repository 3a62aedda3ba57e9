"""The v1 HTTP contract over real HTTP, real engines, and both storage paths; every bad input of issue 2."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from ivr_service.app import RUNTIME
from secretary.calls.models import CallRecord, CallState, TurnRecord
from secretary.calls.prompts import ENGLISH
from secretary.speech.audio import Pcm, parse_wav, silence, wav_bytes
from tests.support import databases
from tests.support.speech import Speech
from tests.support.tcp_proxy import tcp_proxy_for

ACME = databases.ACME
GLOBEX = databases.GLOBEX


async def start(client: TestClient[Any, Any], domain: str = "acme.example.com", **extra: str) -> dict[str, Any]:
    call_uuid = str(uuid.uuid4())
    body = {"domain_name": domain, "call_uuid": call_uuid, "caller_id_number": "5551234"} | extra
    response = await client.post("/api/v1/calls", json=body)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    payload = await response.json()
    assert set(payload) == {"error"} and payload["error"]["message"]
    return dict(payload["error"])


async def test_a_call_with_recordings_from_the_spool(client_for: Any, make_settings: Any, speech: Speech) -> None:
    settings = make_settings()
    client = await client_for(settings)
    started = await start(client)
    assert started["say"]["text"].startswith("Hello, you have reached Acme")
    assert started["action"] == {"type": "continue"}
    greeting = Path(started["say"]["audio_file"])
    assert greeting.is_relative_to((settings.spool.dir / "cache").resolve())
    assert "you have reached" in (await speech.hear(parse_wav(greeting.read_bytes()))).lower()
    record = started["record"]
    assert record == {"file": record["file"], "max_seconds": 15, "silence_threshold": 300, "silence_seconds": 2}
    assert f"/in/{ACME}/{started['call_uuid']}/" in record["file"]

    # FreeSWITCH records the caller into record.file, then the script posts it.
    Path(record["file"]).write_bytes(wav_bytes(speech.say("What are your opening hours?")))
    turn = await client.post(
        f"/api/v1/calls/{started['call_uuid']}/turns", json={"recording_file": record["file"], "domain_uuid": ACME}
    )
    result = await turn.json()
    assert turn.status == 200, result
    assert "opening hours" in result["heard"].lower()
    assert "Monday to Friday" in result["say"]["text"]
    assert set(result["timings"]) == {"stt_ms", "brain_ms", "tts_ms", "total_ms"}
    assert result["record"]["file"].endswith("turn-002.wav")

    # The same greeting for the next call comes from the TTS cache: same file, nothing synthesised.
    again = await start(client)
    assert again["say"]["audio_file"] == started["say"]["audio_file"]

    ended = await client.post(f"/api/v1/calls/{started['call_uuid']}/end", json={"hangup_cause": "NORMAL_CLEARING"})
    summary = await ended.json()
    assert summary["turns"] == 1 and summary["call_uuid"] == started["call_uuid"]
    saved = settings.data_dir / "calls" / ACME / f"{started['call_uuid']}.json"
    assert "opening hours" in saved.read_text().lower()
    # The call is over: its state is gone.
    await error_of(await client.post(f"/api/v1/calls/{started['call_uuid']}/end", json={}), 404)


async def test_wav_body_dtmf_and_message_taking(client_for: Any, make_settings: Any, speech: Speech) -> None:
    client = await client_for(make_settings())
    call = (await start(client))["call_uuid"]
    dtmf = await (await client.post(f"/api/v1/calls/{call}/dtmf", json={"digits": "1003"})).json()
    assert dtmf["action"] == {"type": "transfer", "destination": "1003", "context": "acme.example.com"}

    call = (await start(client, caller_id_name="Robin Banks"))["call_uuid"]
    for text in ("I would like to leave a message for sales.", "Yes."):  # the details read back, then confirmed
        wav = wav_bytes(speech.say(text))
        asked = await client.post(f"/api/v1/calls/{call}/turns", data=wav, headers={"Content-Type": "audio/wav"})
        asked_json = await asked.json()
    assert asked_json["action"]["type"] == "take_message", asked_json
    assert asked_json["record"]["file"].endswith("message.wav") and asked_json["record"]["max_seconds"] == 120
    Path(asked_json["record"]["file"]).write_bytes(wav_bytes(speech.say("Please call me back about my invoice.")))
    taken = await (
        await client.post(f"/api/v1/calls/{call}/turns", json={"recording_file": asked_json["record"]["file"]})
    ).json()
    assert taken["action"]["type"] == "hangup" and "invoice" in taken["heard"].lower()


async def test_a_silent_caller_is_asked_again_then_the_call_ends(
    client_for: Any, make_settings: Any, speech: Speech
) -> None:
    """No input is not a misunderstanding: no STT, no brain; "Are you still there?" until
    `recording.silent_turns` (2) silent turns in a row, then goodbye. A bare WAV header (what FreeSWITCH
    records when no audio arrives) is such a turn; speech in between starts the count again."""
    settings = make_settings()
    client = await client_for(settings)
    started = await start(client)
    call, turns = started["call_uuid"], f"/api/v1/calls/{started['call_uuid']}/turns"
    wav = {"Content-Type": "audio/wav"}
    first = await (await client.post(turns, data=wav_bytes(silence(1.0, 8000)), headers=wav)).json()
    assert (first["heard"], first["timings"]["stt_ms"], first["say"]["text"]) == ("", 0, ENGLISH.still_there)
    assert first["action"] == {"type": "continue"}
    spoken = await (await client.post(turns, data=wav_bytes(speech.say("Hello?")), headers=wav)).json()
    assert spoken["say"]["text"] != ENGLISH.still_there
    header_only = Path(spoken["record"]["file"])
    header_only.write_bytes(wav_bytes(Pcm(b"", 8000)))
    assert len(header_only.read_bytes()) == 44
    again = await (await client.post(turns, json={"recording_file": str(header_only)})).json()
    assert again["say"]["text"] == ENGLISH.still_there  # the count started again after the speech
    last = await (await client.post(turns, data=wav_bytes(Pcm(b"", 8000)), headers=wav)).json()
    assert (last["say"]["text"], last["action"]) == (ENGLISH.nobody_there, {"type": "hangup"})
    await client.post(f"/api/v1/calls/{call}/end", json={"ended_by": "hangup", "hangup_cause": "NORMAL_CLEARING"})
    record = json.loads((settings.data_dir / "calls" / ACME / f"{call}.json").read_text())
    assert (record["outcome"], record["hangup_cause"], len(record["turns"])) == ("caller_silent", "NORMAL_CLEARING", 4)
    assert [t["brain"] for t in record["turns"]] == ["silence", "front_desk", "silence", "silence"]


async def test_an_empty_message_recording_is_a_silent_turn_not_a_message(
    client_for: Any, make_settings: Any, speech: Speech
) -> None:
    settings = make_settings()
    client = await client_for(settings)
    call = (await start(client, caller_id_name="Robin Banks"))["call_uuid"]
    turns, wav = f"/api/v1/calls/{call}/turns", {"Content-Type": "audio/wav"}
    for text in ("Can I leave a message for billing?", "Yes."):
        asked = await (await client.post(turns, data=wav_bytes(speech.say(text)), headers=wav)).json()
    assert asked["action"]["type"] == "take_message"
    silent = await (await client.post(turns, data=wav_bytes(Pcm(b"", 8000)), headers=wav)).json()
    assert silent["say"]["text"] == ENGLISH.still_there and silent["record"]["file"] == asked["record"]["file"]
    await client.post(f"/api/v1/calls/{call}/end", json={"ended_by": "caller"})
    assert not list(settings.data_dir.glob("messages*/**/*.json"))  # neither taken nor held


async def test_the_end_records_how_the_script_saw_the_call_end(client_for: Any, make_settings: Any) -> None:
    settings = make_settings()
    client = await client_for(settings)

    async def ended(body: dict[str, Any], digits: str | None = None) -> dict[str, Any]:
        call = (await start(client))["call_uuid"]
        if digits:
            await client.post(f"/api/v1/calls/{call}/dtmf", json={"digits": digits})
        response = await client.post(f"/api/v1/calls/{call}/end", json=body)
        assert response.status == 200, await response.text()
        return dict(json.loads((settings.data_dir / "calls" / ACME / f"{call}.json").read_text()))

    fell_back = await ended(
        {"ended_by": "fallback", "reason": "/api/v1/calls/x/turns: HTTP 503", "destination": "1001"}
    )
    assert (fell_back["outcome"], fell_back["outcome_destination"], fell_back["hangup_cause"]) == (
        "fallback",
        "1001",
        None,
    )
    gave_up = await ended({"ended_by": "fallback", "reason": "x", "hangup_cause": "NORMAL_TEMPORARY_FAILURE"})
    assert (gave_up["outcome"], gave_up["outcome_destination"]) == ("fallback", None)
    transferred = await ended({"ended_by": "transfer"}, digits="1002")
    assert (transferred["outcome"], transferred["outcome_destination"]) == ("transfer", "1002")
    left_first = await ended({"ended_by": "caller"}, digits="1002")  # the caller left during "putting you through"
    assert (left_first["outcome"], left_first["outcome_destination"]) == ("caller_hangup", None)
    older_script = await ended({"hangup_cause": "NORMAL_CLEARING"}, digits="1002")
    assert older_script["outcome"] == "transfer"
    for bad in ({"ended_by": "somebody"}, {"destination": "1001 XML evil"}, {"reason": "x" * 300}):
        call = (await start(client))["call_uuid"]
        refused = await error_of(await client.post(f"/api/v1/calls/{call}/end", json=bad), 400)
        assert refused["field"] == next(iter(bad))


async def test_bad_requests_get_clear_json_errors(
    client_for: Any, make_settings: Any, speech: Speech, tmp_path: Path
) -> None:
    settings = make_settings()
    client = await client_for(settings)
    assert (await error_of(await client.post("/api/v1/calls", data=b"{nope"), 400))["code"] == "invalid_json"
    missing = await error_of(await client.post("/api/v1/calls", json={"domain_name": "acme.example.com"}), 400)
    assert missing["field"] == "call_uuid" and missing["code"] == "missing_field"
    bad_uuid = await error_of(await client.post("/api/v1/calls", json={"domain_name": "x", "call_uuid": "1"}), 400)
    assert bad_uuid["field"] == "call_uuid"
    no_domain = await error_of(await client.post("/api/v1/calls", json={"call_uuid": str(uuid.uuid4())}), 400)
    assert no_domain["field"] == "domain_uuid"
    unknown = await client.post("/api/v1/calls", json={"domain_name": "nope.example", "call_uuid": str(uuid.uuid4())})
    assert (await error_of(unknown, 404))["code"] == "unknown_domain"
    assert (await error_of(await client.post("/api/v1/calls", json=[1, 2]), 400))["code"] == "invalid_json"

    ghost = str(uuid.uuid4())
    unknown_call = await client.post(f"/api/v1/calls/{ghost}/turns", json={"recording_file": "/tmp/x.wav"})
    assert (await error_of(unknown_call, 404))["code"] == "unknown_call"
    await error_of(await client.post("/api/v1/calls/not-a-uuid/turns", json={"recording_file": "x"}), 400)
    await error_of(await client.post(f"/api/v1/calls/{ghost}/dtmf", json={"digits": "1; rm"}), 400)

    started = await start(client)
    call, inbox = started["call_uuid"], Path(started["record"]["file"]).parent
    turns = f"/api/v1/calls/{call}/turns"
    outside = tmp_path / "secret.wav"
    outside.write_bytes(wav_bytes(speech.say("hello")))
    for path in (str(outside), f"{inbox}/../../../../etc/passwd", "/etc/passwd", "relative/../../x.wav"):
        err = await error_of(await client.post(turns, json={"recording_file": path}), 400)
        assert err["code"] == "path_outside_spool" and err["field"] == "recording_file"
    # another call's folder of the same domain is outside this call's folder too
    other = await start(client)
    other_file = Path(other["record"]["file"])
    other_file.write_bytes(wav_bytes(speech.say("hello")))
    assert (await error_of(await client.post(turns, json={"recording_file": str(other_file)}), 400))[
        "code"
    ] == "path_outside_spool"
    link = inbox / "turn-001.wav"
    os.symlink(outside, link)
    assert (await error_of(await client.post(turns, json={"recording_file": str(link)}), 400))[
        "code"
    ] == "path_outside_spool"
    link.unlink()
    link.write_bytes(b"ID3 this is an mp3")
    assert (await error_of(await client.post(turns, json={"recording_file": str(link)}), 422))["code"] == "bad_audio"
    link.write_bytes(wav_bytes(speech.say("hello"))[:500])
    assert "truncated" in (await error_of(await client.post(turns, json={"recording_file": str(link)}), 422))["message"]
    link.write_bytes(b"RIFF\x24\x00\x00\x00WAVE")  # no fmt chunk at all
    assert "fmt" in (await error_of(await client.post(turns, json={"recording_file": str(link)}), 422))["message"]
    missing_file = await client.post(turns, json={"recording_file": str(inbox / "nope.wav")})
    assert (await error_of(missing_file, 400))["code"] == "not_found"
    await error_of(await client.post(turns, data=b"RIFF", headers={"Content-Type": "audio/wav"}), 422)

    # 50 MB: refused from its Content-Length, and nothing lands in the spool.
    before = {p for p in settings.spool.dir.rglob("*")}
    huge = await client.post(turns, data=b"\0" * (50 * 1024 * 1024), headers={"Content-Type": "audio/wav"})
    assert (await error_of(huge, 413))["code"] == "too_large"
    big_json = await client.post("/api/v1/calls", data=b"[" + b"1," * (6 * 1024 * 1024) + b"1]")
    assert (await error_of(big_json, 413))["code"] == "too_large"
    assert {p for p in settings.spool.dir.rglob("*")} == before
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.wav"))

    # The call still works after all that.
    good = await client.post(
        turns, data=wav_bytes(speech.say("Where are you located?")), headers={"Content-Type": "audio/wav"}
    )
    assert "Main Street" in (await good.json())["say"]["text"]


async def test_metrics_and_health(client_for: Any, make_settings: Any) -> None:
    client = await client_for(make_settings())
    await start(client)
    await client.post("/api/v1/calls", json={"domain_name": "nope.example", "call_uuid": str(uuid.uuid4())})
    health = await client.get("/health")
    assert health.status == 200 and (await health.json()) == {
        "status": "ok",
        "checks": {"postgresql": "disabled", "redis": "disabled", "chromadb": "ok"},
    }
    text = await (await client.get("/metrics")).text()
    assert 'voiceai_calls_started_total{transport="turn"} 1.0' in text
    assert 'voiceai_errors_total{code="unknown_domain"} 1.0' in text


async def test_postgres_and_redis_with_tenant_walls(
    client_for: Any, make_settings: Any, speech: Speech, fusionpbx_url: str, redis_url: str
) -> None:
    settings = make_settings(database_url=fusionpbx_url, redis_url=redis_url)
    client = await client_for(settings)
    acme_call = (await start(client))["call_uuid"]
    globex = await start(client, domain="globex.example.com")
    assert globex["say"]["text"] == "Globex, good day. How may I help?"

    # acme can't act on globex's call: it reads as unknown.
    for route, body in (("turns", {"recording_file": "x.wav"}), ("dtmf", {"digits": "1"}), ("end", {})):
        response = await client.post(f"/api/v1/calls/{globex['call_uuid']}/{route}", json=body | {"domain_uuid": ACME})
        assert (await error_of(response, 404))["code"] == "unknown_call"
    reuse = await client.post("/api/v1/calls", json={"domain_uuid": ACME, "call_uuid": globex["call_uuid"]})
    await error_of(reuse, 404)

    # disabled domain
    refused = await client.post(
        "/api/v1/calls", json={"domain_uuid": databases.INITECH, "call_uuid": str(uuid.uuid4())}
    )
    assert (await error_of(refused, 403))["code"] == "domain_disabled"

    # State lives in Redis: a new service process continues the call.
    second = await client_for(settings)
    wav = wav_bytes(speech.say("Please put me through to sales."))
    moved = await (
        await second.post(f"/api/v1/calls/{acme_call}/turns", data=wav, headers={"Content-Type": "audio/wav"})
    ).json()
    assert moved["action"] == {"type": "transfer", "destination": "1002", "context": "acme.example.com"}
    await second.post(f"/api/v1/calls/{acme_call}/end", json={"hangup_cause": "NORMAL_CLEARING"})
    record = await second.app[RUNTIME].call_records.get(uuid.UUID(ACME), uuid.UUID(acme_call))
    assert record is not None and record.outcome == "transfer" and record.outcome_destination == "1002"
    assert record.turns[0].stt_ms and "sales" in record.turns[0].caller_text.lower()
    assert record.hangup_cause == "NORMAL_CLEARING"
    health = await (await second.get("/health")).json()
    assert health["checks"] == {"postgresql": "ok", "redis": "ok", "chromadb": "ok"}


async def test_dependencies_down_mean_503(client_for: Any, make_settings: Any) -> None:
    dead_pg = await client_for(make_settings(database_url="postgresql://postgres@127.0.0.1:9/x"))
    response = await dead_pg.post("/api/v1/calls", json={"domain_uuid": ACME, "call_uuid": str(uuid.uuid4())})
    assert (await error_of(response, 503))["code"] == "dependency_unavailable"
    assert (await dead_pg.get("/health")).status == 503

    dead_redis = await client_for(make_settings(redis_url="redis://127.0.0.1:9/0"))
    response = await dead_redis.post("/api/v1/calls", json={"domain_uuid": ACME, "call_uuid": str(uuid.uuid4())})
    assert (await error_of(response, 503))["code"] == "dependency_unavailable"
    health = await dead_redis.get("/health")
    assert health.status == 503 and (await health.json())["checks"]["redis"] == "down"


async def test_a_call_ended_during_a_postgresql_outage_keeps_its_record(
    client_for: Any, make_settings: Any, redis_url: str, fusionpbx_url: str
) -> None:
    """/end while PostgreSQL is down answers 200: the record waits in data_dir/calls-spill and is saved in
    the background once PostgreSQL is back."""
    with tcp_proxy_for(fusionpbx_url) as proxy:
        settings = make_settings(redis_url=redis_url, database_url=proxy.url_for(fusionpbx_url), spill_retry_s=0.05)
        client = await client_for(settings)
        call = (await start(client))["call_uuid"]
        proxy.cut()
        ended = await client.post(f"/api/v1/calls/{call}/end", json={"domain_name": "acme.example.com"})
        assert ended.status == 200, await ended.text()
        assert (settings.data_dir / "calls-spill" / ACME / f"{call}.json").is_file()
        proxy.resume()
        records = client.app[RUNTIME].call_records
        deadline = asyncio.get_running_loop().time() + 20
        while (record := await records.get(uuid.UUID(ACME), uuid.UUID(call))) is None:
            assert asyncio.get_running_loop().time() < deadline, "the spilled record was never saved"
            await asyncio.sleep(0.05)
        assert record.transport == "turn"


async def test_a_call_resumed_from_realtime_is_one_record(client_for: Any, make_settings: Any) -> None:
    """The bridge went away mid-call: its state is replaced by a turn-based one, the caller hears a short
    line instead of the greeting, and the record the bridge saved gets the rest of the call, turns in order."""
    settings = make_settings()
    client = await client_for(settings)
    runtime = client.server.app[RUNTIME]
    call_uuid = uuid.uuid4()
    began = datetime.now(UTC) - timedelta(seconds=30)
    bridge_state = CallState(
        call_uuid=call_uuid, domain_uuid=uuid.UUID(ACME), domain_name="acme.example.com", transport="realtime"
    )
    await runtime.call_states.put(bridge_state)  # left by a bridge that died, or that is finishing
    heard = TurnRecord(
        index=1, at=began + timedelta(seconds=5), caller_text="Where are you?", secretary_text="Main St."
    )
    earlier = CallRecord.from_state(
        bridge_state.model_copy(update={"started_at": began, "turns": [heard], "usage": {"tts.piper.requests": 2}}),
        began + timedelta(seconds=20),
        "stream_closed_1000",
    )
    await runtime.call_records.save(earlier)

    started = await start(client, call_uuid=str(call_uuid), resumed_from="realtime")
    assert started["say"]["text"] == "Sorry, we were cut off for a moment. How can I help you?"
    assert (await runtime.call_states.get(call_uuid)).transport == "turn"  # type: ignore[union-attr]
    dtmf = await client.post(f"/api/v1/calls/{call_uuid}/dtmf", json={"digits": "1003"})
    assert dtmf.status == 200
    ended = await client.post(f"/api/v1/calls/{call_uuid}/end", json={})
    assert ended.status == 200

    record = await runtime.call_records.get(uuid.UUID(ACME), call_uuid)
    assert record is not None
    assert [(t.index, t.caller_text) for t in record.turns] == [(1, "Where are you?"), (2, "DTMF 1003")]
    assert (record.transport, record.outcome, record.started_at) == ("realtime", "transfer", began)
    assert record.usage["tts.piper.requests"] >= 2 and record.usage["fallbacks.transport"] == 1
    assert record.duration_ms >= 30_000
    bad = await client.post(
        "/api/v1/calls",
        json={"domain_name": "acme.example.com", "call_uuid": str(uuid.uuid4()), "resumed_from": "nowhere"},
    )
    assert (await error_of(bad, 400))["field"] == "resumed_from"
