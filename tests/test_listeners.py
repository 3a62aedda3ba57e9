"""How the service listens (issue 9, item 14): v1 and the admin API on listeners of their own, both on loopback
by default; v1's optional shared secret; and the bound on what one call may leave in the spool by uploading
turn audio (refused past a per-call quota, removed at `/end` or once the call has expired)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from ivr_service.spool import AudioSpool, CallUploads
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import silence, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.support.databases import ACME
from voiceai.serve import start_http, stop_http

SECRET = "s3cret-token_for.the~v1+API/="
SILENT_TURN = wav_bytes(silence(500, 8000))  # no speech: no STT, the front desk asks again


async def status_and_code(response: aiohttp.ClientResponse) -> tuple[int, str | None]:
    payload = await response.json() if response.content_type == "application/json" else {}
    return response.status, payload.get("error", {}).get("code")


# -- the listeners ------------------------------------------------------------------------------------------


def test_both_listeners_default_to_loopback_on_ports_of_their_own() -> None:
    defaults = Settings(database_url=None)
    assert (defaults.ivr.host, defaults.ivr.port) == ("127.0.0.1", 8086)
    assert (defaults.admin.host, defaults.admin.port) == ("127.0.0.1", 8087)
    # clear of FusionPBX's websocket (8080), the event socket (8021) and the bridge (8085)
    assert defaults.admin.port not in {8080, 8021, defaults.bridge.port, defaults.ivr.port}
    assert defaults.ivr.shared_secret is None


def test_two_listeners_on_one_port_are_refused_naming_both() -> None:
    with pytest.raises(ValidationError, match=r"ivr\.port and admin\.port are both 9000"):
        Settings(database_url=None, ivr={"port": 9000}, admin={"port": 9000})
    with pytest.raises(ValidationError, match=r"bridge\.port and admin\.port"):
        Settings(database_url=None, admin={"port": 8085})
    # without the admin API its port is free for anything
    assert Settings(database_url=None, admin={"enabled": False, "port": 8086}).admin.port == 8086


async def test_serve_starts_v1_and_the_admin_api_on_separate_listeners(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    settings = make_settings(ivr={"port": 0}, admin={"port": 0}, messages={"enabled": False})
    runtime = Runtime.create(settings, models=models)
    runners = await start_http(runtime)
    try:
        v1, admin = (f"http://127.0.0.1:{runner.addresses[0][1]}" for runner in runners)
        assert v1 != admin
        async with aiohttp.ClientSession() as http:
            admin_path = "/api/v1/admin/domains"
            async with http.get(v1 + admin_path, headers={"Authorization": "Bearer vai_x"}) as response:
                assert await status_and_code(response) == (404, "not_found")
            async with http.get(admin + admin_path, headers={"Authorization": "Bearer vai_x"}) as response:
                assert await status_and_code(response) == (409, "database_required")  # served, needs PostgreSQL
            async with http.post(admin + "/api/v1/calls", json={"domain_uuid": ACME}) as response:
                assert await status_and_code(response) == (404, "not_found")
            async with http.post(v1 + f"/api/v1/calls/{uuid.uuid4()}/end", json={}) as response:
                assert await status_and_code(response) == (404, "unknown_call")  # served, the call is unknown
            for base in (v1, admin):
                async with http.get(base + "/health") as response:
                    assert response.status == 200
            async with http.get(admin + "/metrics") as response:
                assert response.status == 404  # metrics stay on v1 (and the bridge), next to FreeSWITCH
    finally:
        await stop_http(runners)
        await runtime.close()

    without_admin = settings.model_copy(update={"admin": settings.admin.model_copy(update={"enabled": False})})
    no_admin = Runtime.create(without_admin, models=models)
    runners = await start_http(no_admin)
    try:
        assert len(runners) == 1
    finally:
        await stop_http(runners)
        await no_admin.close()


# -- the shared secret ----------------------------------------------------------------------------------------


def test_the_shared_secret_must_be_a_token_mod_curl_can_carry() -> None:
    for bad in ("short", "has a blank in it ok", "quote'sinthesecret!", "x" * 257):
        with pytest.raises(ValidationError, match="shared_secret"):
            Settings(database_url=None, ivr={"shared_secret": bad})
    assert Settings(database_url=None, ivr={"shared_secret": ""}).ivr.shared_secret is None  # an empty env var
    assert SECRET not in repr(Settings(database_url=None, ivr={"shared_secret": SECRET}))


async def test_with_a_shared_secret_every_v1_request_must_carry_it(
    client_for: Any, make_settings: Callable[..., Settings]
) -> None:
    client = await client_for(make_settings(ivr={"shared_secret": SECRET}))
    call_uuid = str(uuid.uuid4())
    requests = [
        ("/api/v1/calls", {"domain_uuid": ACME, "call_uuid": call_uuid}),
        (f"/api/v1/calls/{call_uuid}/dtmf", {"digits": "9"}),
        (f"/api/v1/calls/{call_uuid}/turns", {"recording_file": "/etc/passwd"}),
        (f"/api/v1/calls/{call_uuid}/end", {}),
    ]
    refusals = [
        None,
        {"X-VoiceAI-Secret": SECRET + "x"},
        {"Authorization": "Bearer nope"},
        {"X-VoiceAI-Secret": ""},
        {"X-VoiceAI-Secret": "\udcff" + SECRET[1:]},
    ]
    for path, body in requests:
        for headers in refusals:
            async with client.post(path, json=body, headers=headers) as response:
                assert await status_and_code(response) == (401, "unauthorized"), (path, headers)
                assert SECRET not in await response.text()
    # nothing was started by all that
    async with client.post(f"/api/v1/calls/{call_uuid}/end", json={}, headers={"X-VoiceAI-Secret": SECRET}) as r:
        assert await status_and_code(r) == (404, "unknown_call")

    for headers in ({"X-VoiceAI-Secret": SECRET}, {"Authorization": f"Bearer {SECRET}"}):
        call_uuid = str(uuid.uuid4())
        async with client.post(
            "/api/v1/calls", json={"domain_uuid": ACME, "call_uuid": call_uuid}, headers=headers
        ) as response:
            assert response.status == 200, await response.text()
        async with client.post(f"/api/v1/calls/{call_uuid}/dtmf", json={"digits": "9"}, headers=headers) as response:
            assert response.status == 200
        async with client.post(f"/api/v1/calls/{call_uuid}/end", json={}, headers=headers) as response:
            assert response.status == 200
    for open_path in ("/health", "/metrics"):  # health checks and scrapers need no secret
        async with client.get(open_path) as response:
            assert response.status == 200


# -- the per-call upload quota -------------------------------------------------------------------------------


async def _upload(client: TestClient[Any, Any], call_uuid: str, body: bytes) -> tuple[int, str | None]:
    async with client.post(
        f"/api/v1/calls/{call_uuid}/turns", data=body, headers={"Content-Type": "audio/wav"}
    ) as response:
        return await status_and_code(response)


async def _start(client: TestClient[Any, Any]) -> str:
    call_uuid = str(uuid.uuid4())
    async with client.post("/api/v1/calls", json={"domain_uuid": ACME, "call_uuid": call_uuid}) as response:
        assert response.status == 200, await response.text()
    return call_uuid


def _uploads(settings: Settings, call_uuid: str) -> list[str]:
    inbox = settings.spool.dir / "in" / ACME / call_uuid
    return sorted(p.name for p in inbox.iterdir() if "upload" in p.name)


async def test_a_call_past_its_upload_quota_is_refused_with_413(
    client_for: Any, make_settings: Callable[..., Settings]
) -> None:
    by_bytes = make_settings(spool={"max_call_upload_bytes": 2 * len(SILENT_TURN) + 10})
    client = await client_for(by_bytes)
    call_uuid = await _start(client)
    assert await _upload(client, call_uuid, SILENT_TURN) == (200, None)
    assert await _upload(client, call_uuid, SILENT_TURN) == (200, None)
    assert await _upload(client, call_uuid, SILENT_TURN) == (413, "call_upload_quota")
    assert _uploads(by_bytes, call_uuid) == ["upload-001.wav", "upload-002.wav"]  # what it had is kept
    other_call = await _start(client)  # the quota is per call
    assert await _upload(client, other_call, SILENT_TURN) == (200, None)

    by_files = make_settings(spool={"dir": by_bytes.spool.dir.parent / "spool2", "max_call_uploads": 2})
    client = await client_for(by_files)
    call_uuid = await _start(client)
    for _ in range(2):
        assert await _upload(client, call_uuid, SILENT_TURN) == (200, None)
    async with client.post(
        f"/api/v1/calls/{call_uuid}/turns", data=SILENT_TURN, headers={"Content-Type": "audio/wav"}
    ) as response:
        error = (await response.json())["error"]
        assert (response.status, error["code"], error["field"]) == (413, "call_upload_quota", "body")
        assert "2 files" in error["message"]


async def test_uploaded_turn_audio_is_removed_when_the_call_ends(
    client_for: Any, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    client = await client_for(settings)
    call_uuid = await _start(client)
    for _ in range(2):
        assert await _upload(client, call_uuid, SILENT_TURN) == (200, None)
    recorded = settings.spool.dir / "in" / ACME / call_uuid / "turn-001.wav"  # FreeSWITCH's own: not an upload
    recorded.write_bytes(SILENT_TURN)
    assert _uploads(settings, call_uuid) == ["upload-001.wav", "upload-002.wav"]
    async with client.post(f"/api/v1/calls/{call_uuid}/end", json={}) as response:
        assert response.status == 200
    assert _uploads(settings, call_uuid) == [] and recorded.is_file()


def _aged(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SILENT_TURN)
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_turn_uploads_older_than_the_call_state_keeps_messages(tmp_path: Path) -> None:
    spool = AudioSpool(tmp_path, None, 1024 * 1024)
    uploads = CallUploads(spool, 1024 * 1024, 10)
    old, live = (spool.inbox(uuid.UUID(ACME), uuid.uuid4()) for _ in range(2))
    _aged(old / "upload-001.wav", 3600)
    _aged(old / "message-upload-002.wav", 3600)  # a taken message's audio: it is the message
    _aged(old / "turn-001.wav", 3600)
    _aged(live / "upload-001.wav", 60)
    now = time.time()
    assert uploads.sweep(max_age_s=600, now=now) == 1
    assert sorted(p.name for p in old.iterdir()) == ["message-upload-002.wav", "turn-001.wav"]
    assert [p.name for p in live.iterdir()] == ["upload-001.wav"]
    assert uploads.sweep(max_age_s=30, now=now) == 1 and list(live.iterdir()) == []


async def test_the_service_sweeps_expired_uploads_when_it_starts(
    client_for: Any, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(call_state_ttl_s=600)
    inbox = settings.spool.dir / "in" / ACME / str(uuid.uuid4())
    _aged(inbox / "upload-001.wav", 601)
    _aged(inbox / "upload-002.wav", 10)
    await client_for(settings)
    assert sorted(p.name for p in inbox.iterdir()) == ["upload-002.wav"]
