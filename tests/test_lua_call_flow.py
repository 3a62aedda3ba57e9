"""The proof, end to end: real speech (Piper) → the real `secretary_ai.lua` in real Lua 5.3 → mod_curl over
real HTTP → the real ivr_service → Whisper → the front desk → Piper → the WAV the script plays, which
Whisper transcribes again. Run against FusionPBX's PostgreSQL (5.4 and 5.5 schemas) with Redis, and
against the embedded defaults (YAML secretaries, in-memory call state, call records as files)."""

from __future__ import annotations

import asyncio
import json
import re
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from freeswitch.caller import Say
from freeswitch.lua_sim import CallResult, Transfer
from secretary.settings import Settings
from secretary.speech.audio import wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.support.databases import ACME
from tests.support.live_service import live_ivr_service
from tests.support.lua_calls import (
    ACME_NAME,
    FALLBACK_PROMPT_TEXT,
    acme_call,
    assert_clean,
    reply,
    route,
    routes,
    write_fallback_prompt,
)
from tests.support.speech import Speech

HOURS = "What are your opening hours?"
SALES = "Please put me through to sales."
GOODBYE = "Goodbye."


@pytest.fixture(scope="module")
def fallback_prompt(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fallback_prompt(wav_bytes(speech.say(FALLBACK_PROMPT_TEXT)), tmp_path_factory.mktemp("sounds"))


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def run_proof(
    settings: Settings, models: LocalModels, speech: Speech, fallback_prompt: Path
) -> tuple[CallResult, CallResult]:
    spool = settings.spool.dir
    with live_ivr_service(settings, models) as (url, _runtime):
        hours_then_goodbye = acme_call(
            url, [Say(speech.say(HOURS)), Say(speech.say(GOODBYE))], fallback_prompt, spool_dir=spool
        )
        sales = acme_call(url, [Say(speech.say(SALES))], fallback_prompt, spool_dir=spool)
    return hours_then_goodbye, sales


def check_calls(first: CallResult, second: CallResult, speech: Speech, spool: Path) -> None:
    for result in (first, second):
        assert_clean(result)
        assert "falling back" not in result.log_text()
        for recording in result.recordings:  # what FreeSWITCH would have written: 8 kHz 16-bit mono WAV
            assert Path(recording.path).is_relative_to(spool.resolve())
            with wave.open(recording.path) as wav:
                assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)

    # Call 1: the hours, then goodbye.
    assert routes(first) == [("start", 200), ("turns", 200), ("turns", 200), ("end", 200)]
    hours_turn, goodbye_turn = reply(first.exchanges[1]), reply(first.exchanges[2])
    assert "hours" in words(hours_turn["heard"])
    assert hours_turn["action"] == {"type": "continue"}
    played = {p.path: p for p in first.played}
    spoken = words(speech.transcribe(played[hours_turn["say"]["audio_file"]].pcm()))
    assert "monday" in spoken and "friday" in spoken, spoken
    assert re.search(r"\b(9|nine)( ?a ?m)?\b", spoken) and re.search(r"\b(5|five)( ?p ?m)?\b", spoken), spoken
    assert "bye" in words(goodbye_turn["heard"])
    assert goodbye_turn["action"]["type"] == "hangup"
    assert first.played[-1].path == goodbye_turn["say"]["audio_file"]  # the farewell, then the hang-up
    assert (first.hung_up_by, first.hangup_cause) == ("script", "NORMAL_CLEARING")
    assert first.events.index(("hangup", "NORMAL_CLEARING")) > first.events.index(
        ("streamFile", goodbye_turn["say"]["audio_file"])
    )
    assert json.loads(first.exchanges[3].request_body) == {
        "domain_uuid": ACME,
        "ended_by": "hangup",
        "hangup_cause": "NORMAL_CLEARING",
    }

    # Call 2: straight through to Sales.
    assert routes(second) == [("start", 200), ("turns", 200), ("end", 200)]
    transfer_turn = reply(second.exchanges[1])
    assert "sales" in words(transfer_turn["heard"])
    assert transfer_turn["action"] == {"type": "transfer", "destination": "1002", "context": ACME_NAME}
    assert second.transfer == Transfer("1002", "XML", ACME_NAME)
    assert ("transfer", "1002", "XML", ACME_NAME) in second.events
    assert json.loads(second.exchanges[-1].request_body) == {"domain_uuid": ACME, "ended_by": "transfer"}


def check_records(records: dict[str, dict[str, Any]], first: CallResult, second: CallResult) -> None:
    hours_call, sales_call = records[first.uuid], records[second.uuid]
    assert (hours_call["outcome"], hours_call["hangup_cause"], len(hours_call["turns"])) == (
        "hangup",
        "NORMAL_CLEARING",
        2,
    )
    assert (sales_call["outcome"], sales_call["outcome_destination"], len(sales_call["turns"])) == (
        "transfer",
        "1002",
        1,
    )
    assert hours_call["caller_id_number"] == "1000" and hours_call["destination_number"] == "5000"
    exchanges = first.exchanges[1:3] + second.exchanges[1:2]
    turns = hours_call["turns"] + sales_call["turns"]
    for exchange, turn in zip(exchanges, turns, strict=True):
        sent = reply(exchange)
        assert turn["caller_text"] == sent["heard"]
        assert turn["secretary_text"] == sent["say"]["text"]
        assert turn["action_type"] == sent["action"]["type"]
        assert turn["recording_file"] == json.loads(exchange.request_body)["recording_file"]
        assert turn["reply_file"] == sent["say"]["audio_file"]
        assert turn["stt_ms"] > 0 and turn["total_ms"] > 0 and turn["tts_ms"] is not None
    assert "Monday" in hours_call["turns"][0]["secretary_text"]
    assert sales_call["turns"][0]["action_destination"] == "1002"


async def postgres_records(url: str, call_uuids: list[str]) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, dict[str, Any]] = {}
        for call_uuid in call_uuids:
            call = await conn.fetchrow(
                """SELECT ai_call_uuid, domain_uuid, caller_id_number, destination_number, outcome,
                          outcome_destination, hangup_cause, turn_count, duration_ms
                   FROM v_ai_calls WHERE call_uuid = $1""",
                UUID(call_uuid),
            )
            assert call is not None, f"no v_ai_calls row for {call_uuid}"
            assert str(call["domain_uuid"]) == ACME and call["duration_ms"] > 0
            turns = await conn.fetch(
                """SELECT caller_text, secretary_text, action_type, action_destination, recording_file,
                          reply_file, stt_ms, tts_ms, total_ms, domain_uuid
                   FROM v_ai_call_turns WHERE ai_call_uuid = $1 ORDER BY turn_index""",
                call["ai_call_uuid"],
            )
            assert call["turn_count"] == len(turns) and all(str(t["domain_uuid"]) == ACME for t in turns)
            out[call_uuid] = dict(call) | {"turns": [dict(t) for t in turns]}
        return out
    finally:
        await conn.close()


def file_records(data_dir: Path, call_uuids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for call_uuid in call_uuids:
        record = json.loads((data_dir / "calls" / ACME / f"{call_uuid}.json").read_text())
        out[call_uuid] = record | {
            "turns": [
                {
                    "caller_text": t["caller_text"],
                    "secretary_text": t["secretary_text"],
                    "action_type": t["action"]["type"],
                    "action_destination": t["action"].get("destination"),
                    "recording_file": t["recording_file"],
                    "reply_file": t["reply_file"],
                    "stt_ms": t["stt_ms"],
                    "tts_ms": t["tts_ms"],
                    "total_ms": t["total_ms"],
                }
                for t in record["turns"]
            ]
        }
    return out


def test_proof_with_fusionpbx_postgresql_and_redis(
    make_settings: Callable[..., Settings],
    fusionpbx_url: str,
    redis_url: str,
    models: LocalModels,
    speech: Speech,
    fallback_prompt: Path,
) -> None:
    settings = make_settings(database_url=fusionpbx_url, redis_url=redis_url)
    first, second = run_proof(settings, models, speech, fallback_prompt)
    check_calls(first, second, speech, settings.spool.dir)
    check_records(asyncio.run(postgres_records(fusionpbx_url, [first.uuid, second.uuid])), first, second)


def test_proof_with_embedded_defaults(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    settings = make_settings()  # YAML secretaries, call state in memory, call records as files
    first, second = run_proof(settings, models, speech, fallback_prompt)
    check_calls(first, second, speech, settings.spool.dir)
    check_records(file_records(settings.data_dir, [first.uuid, second.uuid]), first, second)
    assert [route(e) for e in first.exchanges].count("end") == 1
