"""The turn-based service (real HTTP, real ivr_service) with a domain on cloud providers: Deepgram hears the
caller, Groq answers with a tool call, ElevenLabs speaks. Then every provider fails at once (Groq 500,
ElevenLabs answers broken JSON, Deepgram drops the socket mid-utterance): the caller still gets a useful
answer from Whisper, the front desk and Piper, and the call record carries the usage. (Deadlines here are
generous so a loaded machine never fails the healthy half; hangs and stalls are covered in test_faults.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from ivr_service.app import create_app
from secretary.calls.models import CallRecord
from secretary.calls.record_store import PostgresCallRecordStore
from secretary.db.database import Database
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import parse_wav, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.providers.conftest import PATIENT_FALLBACK, PATIENT_LLM, spec
from tests.support import databases
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_elevenlabs import FakeElevenLabs
from tests.support.fake_openai import FakeOpenAi
from tests.support.fake_servers import Fault
from tests.support.speech import Speech

DOMAIN = "acme.example.com"


@pytest.fixture
async def service(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    provider_keys: object,
    fake_openai: FakeOpenAi,
    fake_elevenlabs: FakeElevenLabs,
    fake_deepgram: FakeDeepgram,
) -> AsyncIterator[tuple[str, Runtime]]:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    document["secretaries"][0]["providers"] = {
        "stt": [spec("deepgram", fake_deepgram.url).model_dump(exclude_defaults=True)],
        "brain": [spec("groq", fake_openai.url).model_dump(exclude_defaults=True)],
        "tts": [spec("elevenlabs", fake_elevenlabs.url).model_dump(exclude_defaults=True)],
    }
    secretaries = tmp_path / "secretaries.yaml"
    secretaries.write_text(yaml.safe_dump(document))
    runtime = Runtime.create(
        make_settings(secretaries_file=secretaries, fallback=PATIENT_FALLBACK, llm=PATIENT_LLM), models=models
    )
    runner = web.AppRunner(create_app(runtime, own_runtime=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", runtime
    await runner.cleanup()


async def post(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with http.post(url, **kwargs) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


async def call(http: aiohttp.ClientSession, base: str, speech: Speech, said: str) -> tuple[str, dict[str, Any]]:
    call_uuid = str(uuid.uuid4())
    start = {"domain_name": DOMAIN, "call_uuid": call_uuid, "caller_id_number": "5551234"}
    await post(http, f"{base}/api/v1/calls", json=start)
    turn = await post(
        http,
        f"{base}/api/v1/calls/{call_uuid}/turns",
        data=wav_bytes(speech.say(said, 8000)),
        headers={"Content-Type": "audio/wav"},
    )
    return call_uuid, turn


def spoken(turn: dict[str, Any], speech: Speech) -> str:
    return speech.transcribe(parse_wav(Path(turn["say"]["audio_file"]).read_bytes())).lower()


async def test_cloud_providers_then_all_failing_at_once(
    service: tuple[str, Runtime],
    speech: Speech,
    fake_openai: FakeOpenAi,
    fake_elevenlabs: FakeElevenLabs,
    fake_deepgram: FakeDeepgram,
) -> None:
    base, runtime = service
    async with aiohttp.ClientSession() as http:
        healthy_uuid, healthy = await call(http, base, speech, "I would like to speak to billing please.")
        assert "billing" in healthy["heard"].lower()
        assert healthy["say"]["text"] == "Certainly, one moment."
        assert healthy["action"] == {"type": "transfer", "destination": "1003", "context": DOMAIN}
        assert "certainly" in spoken(healthy, speech)

        fake_openai.fault, fake_elevenlabs.fault, fake_deepgram.fault = (
            Fault.HTTP_500,
            Fault.MALFORMED,
            Fault.DISCONNECT,
        )
        failing_uuid, failing = await call(http, base, speech, "Where are you located?")
        assert "located" in failing["heard"].lower()
        assert "100 main street" in failing["say"]["text"].lower()
        assert "main street" in spoken(failing, speech)

        for call_uuid in (healthy_uuid, failing_uuid):
            await post(http, f"{base}/api/v1/calls/{call_uuid}/end", json={"hangup_cause": "NORMAL_CLEARING"})
        async with http.get(f"{base}/metrics") as response:
            metrics = await response.text()

    acme = uuid.UUID(databases.ACME)
    first = await runtime.call_records.get(acme, uuid.UUID(healthy_uuid))
    second = await runtime.call_records.get(acme, uuid.UUID(failing_uuid))
    assert first is not None and second is not None
    assert first.usage["stt.deepgram.requests"] == 1 and first.usage["brain.groq.requests"] == 1
    assert first.usage["brain.groq.completion_tokens"] == 3 and first.usage["brain.groq.prompt_tokens"] > 0
    assert first.usage["tts.elevenlabs.characters"] >= len("Certainly, one moment.")
    assert not any(key.startswith(("failures.", "fallbacks.")) for key in first.usage)
    assert {key: second.usage[key] for key in second.usage if key.startswith(("failures.", "fallbacks."))} == {
        "failures.stt.deepgram": 1,
        "failures.brain.groq": 1,
        "failures.tts.elevenlabs": 1,
        "fallbacks.stt": 1,
        "fallbacks.brain": 1,
        "fallbacks.tts": 1,  # the greeting came from the cache (ElevenLabs' voice); the reply fell back
    }, second.usage
    assert second.usage["stt.whisper.requests"] == 1 and second.usage["brain.front_desk.requests"] == 1
    assert 'voiceai_provider_fallbacks_total{kind="brain",provider="groq"} 1.0' in metrics
    assert 'voiceai_provider_fallbacks_total{kind="tts",provider="elevenlabs"} 1.0' in metrics

    totals = await runtime.call_records.usage_totals(acme)
    assert totals["stt.deepgram.requests"] == 1 and totals["stt.whisper.requests"] == 1
    assert totals["fallbacks.brain"] == 1


async def test_usage_totals_per_domain_in_postgresql(fusionpbx_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    database = Database(fusionpbx_url)
    store = PostgresCallRecordStore(database)
    now = datetime.now(UTC)

    def record(domain: str, usage: dict[str, float], started: datetime) -> CallRecord:
        return CallRecord(
            call_uuid=uuid.uuid4(),
            domain_uuid=uuid.UUID(domain),
            transport="turn",
            caller_id_number="1",
            caller_id_name="",
            destination_number="",
            started_at=started,
            ended_at=started + timedelta(seconds=30),
            duration_ms=30000,
            outcome="hangup",
            outcome_destination=None,
            hangup_cause=None,
            turns=[],
            usage=usage,
        )

    try:
        await store.save(record(databases.ACME, {"stt.deepgram.audio_seconds": 2.5, "fallbacks.tts": 1}, now))
        await store.save(record(databases.ACME, {"stt.deepgram.audio_seconds": 1.25}, now))
        await store.save(record(databases.ACME, {"stt.deepgram.audio_seconds": 9.0}, now - timedelta(days=40)))
        await store.save(record(databases.GLOBEX, {"stt.deepgram.audio_seconds": 100.0}, now))

        recent = await store.usage_totals(uuid.UUID(databases.ACME), since=now - timedelta(days=30))
        everything = await store.usage_totals(uuid.UUID(databases.ACME))
    finally:
        await database.close()
    assert recent == {"stt.deepgram.audio_seconds": 3.75, "fallbacks.tts": 1}
    assert everything["stt.deepgram.audio_seconds"] == 12.75  # globex's calls are never counted for acme
