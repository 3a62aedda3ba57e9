"""The admin API over real HTTP against a FusionPBX-shaped PostgreSQL (5.4 and 5.5): auth, tenancy on every
route, CRUD, validation naming the field, pagination, size limits, and the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from ivr_service.admin import OPERATIONS
from ivr_service.app import create_admin_app, create_app
from secretary.calls.models import CallRecord, TurnRecord
from secretary.conversation.actions import Action
from secretary.credentials.secret_box import generate_secret_key
from secretary.messages.models import TakenMessage
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.support import admin_env
from tests.support.admin_env import ACME, GLOBEX
from tests.support.pdf import build_pdf
from tests.support.speech import Speech
from tests.support.waiting import until

WAV = wav_bytes(Pcm(b"\x01\x00" * 8000, 8000))


@dataclass
class Seeded:
    call_uuid: uuid.UUID
    message_uuid: uuid.UUID


@dataclass
class Admin:
    client: TestClient[Any, Any]  # the admin listener
    v1: TestClient[Any, Any]  # the v1 listener of the same service
    runtime: Runtime
    keys: dict[str, str]
    acme: Seeded
    globex: Seeded

    async def call(self, method: str, path: str, key: str | None = "super", **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys.get(key, key)}"} if key else {}
        headers |= kwargs.pop("headers", {})
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()


async def _seed(runtime: Runtime, domain: uuid.UUID, caller: str, outcome: str, transport: str = "turn") -> Seeded:
    spool = runtime.settings.spool.dir.resolve()
    call_uuid = uuid.uuid4()
    inbox = spool / "in" / str(domain) / str(call_uuid)
    inbox.mkdir(parents=True)
    (inbox / "turn-001.wav").write_bytes(WAV)
    (inbox / "message.wav").write_bytes(WAV)
    start = datetime.now(UTC) - timedelta(minutes=5)
    turn = TurnRecord(
        index=1,
        at=start,
        caller_text="hello",
        secretary_text="Hi there",
        action=Action.continue_(),
        brain="front_desk",
        stt_ms=300,
        brain_ms=5,
        tts_ms=90,
        total_ms=400,
        recording_file=str(inbox / "turn-001.wav"),
        reply_file=None,
    )
    await runtime.call_records.save(
        CallRecord(
            call_uuid=call_uuid,
            domain_uuid=domain,
            transport=transport,
            caller_id_number=caller,
            caller_id_name=f"Caller {caller}",
            destination_number="5000",
            started_at=start,
            ended_at=start + timedelta(seconds=30),
            duration_ms=30000,
            outcome=outcome,
            outcome_destination=None,
            hangup_cause="NORMAL_CLEARING",
            turns=[turn],
            usage={"tts_chars.piper": 8.0},
        )
    )
    message = TakenMessage(
        domain_uuid=domain,
        call_uuid=call_uuid,
        caller_id_number=caller,
        transcript="please call me back",
        audio_file=str(inbox / "message.wav"),
    )
    await runtime.messages.add(message)
    assert runtime.credentials is not None
    await runtime.credentials.put(domain, "openai", "sk-test-secret-123456", "LLM key")
    return Seeded(call_uuid, message.message_uuid)


@pytest.fixture
async def admin(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels
) -> AsyncIterator[Admin]:
    settings = make_settings(
        database_url=writable_fusionpbx_url,
        secret_key=generate_secret_key(),
        messages={"enabled": False},
        admin={"max_json_bytes": 64 * 1024, "max_upload_bytes": 1024 * 1024, "max_page_size": 20},
        knowledge={"ingest": {"cpu_limit_s": 1, "max_queued_per_domain": 1}},
    )
    runtime = Runtime.create(settings, models=models)
    keys = await admin_env.api_keys(writable_fusionpbx_url)
    acme = await _seed(runtime, ACME, "5551001", "transfer")
    globex = await _seed(runtime, GLOBEX, "5552002", "message")
    async with (
        TestClient(TestServer(create_admin_app(runtime, own_runtime=True))) as client,
        TestClient(TestServer(create_app(runtime))) as v1,
    ):
        yield Admin(client, v1, runtime, keys, acme, globex)


def _fill(path: str, seeded: Seeded, domain: uuid.UUID) -> str:
    values = {
        "domain": str(domain),
        "call_uuid": str(seeded.call_uuid),
        "message_uuid": str(seeded.message_uuid),
        "document_uuid": str(uuid.uuid4()),
        "turn_index": "1",
        "extension": "1002",
        "name": "openai",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


# -- tenancy: every route, generated from the operation table so a new route can't be forgotten ------------

DOMAIN_ROUTES = [op for op in OPERATIONS if "{domain}" in op.path]


@pytest.mark.parametrize("operation", DOMAIN_ROUTES, ids=lambda op: f"{op.method} {op.path}")
async def test_a_domain_key_gets_404_for_anything_of_another_domain(admin: Admin, operation: Any) -> None:
    path = operation.full_path
    body = {"json": {}} if operation.method in ("PUT", "PATCH", "POST") else {}
    # globex's resources through globex's domain, with acme's key: 404, exactly like an unknown domain
    status, error = await admin.call(operation.method, _fill(path, admin.globex, GLOBEX), "acme", **body)
    assert status == 404, error
    assert error["error"]["code"] == "unknown_domain"
    # ... and by domain name
    by_name = _fill(path, admin.globex, GLOBEX).replace(str(GLOBEX), "globex.example.com")
    status, error_by_name = await admin.call(operation.method, by_name, "acme", **body)
    assert (status, error_by_name["error"]["code"]) == (404, "unknown_domain")
    # a domain that does not exist reads the same (nothing tells the key that globex exists)
    status, unknown = await admin.call(
        operation.method, by_name.replace("globex.example.com", "nowhere.example"), "acme", **body
    )
    assert status == 404 and unknown["error"]["code"] == error_by_name["error"]["code"]
    # globex's call/message ids under acme's own domain: not found either
    if any(p in path for p in ("{call_uuid}", "{message_uuid}")):
        status, _ = await admin.call(operation.method, _fill(path, admin.globex, ACME), "acme", **body)
        assert status in (400, 404)
        assert status == 404 or operation.method != "GET"


async def test_the_owner_and_the_superadmin_can_read_what_the_other_domain_key_cannot(admin: Admin) -> None:
    path = f"/api/v1/admin/domains/{GLOBEX}/calls/{admin.globex.call_uuid}"
    assert (await admin.call("GET", path, "globex"))[0] == 200
    assert (await admin.call("GET", path, "super"))[0] == 200
    assert (await admin.call("GET", path, "acme"))[0] == 404


async def test_domain_list_shows_a_domain_key_only_its_own(admin: Admin) -> None:
    status, page = await admin.call("GET", "/api/v1/admin/domains", "acme")
    assert status == 200 and [d["domain_name"] for d in page["items"]] == ["acme.example.com"]
    status, page = await admin.call("GET", "/api/v1/admin/domains", "super")
    names = [d["domain_name"] for d in page["items"]]
    assert names == ["acme.example.com", "globex.example.com", "initech.example.com"]
    assert {d["domain_name"]: d["enabled"] for d in page["items"]}["initech.example.com"] is False


async def test_admin_routes_are_not_on_the_v1_listener_and_v1_routes_not_on_the_admin_one(admin: Admin) -> None:
    """Exposing the admin listener exposes no v1 route (asking any secretary, posting turns to live calls), and
    the v1 listener, FreeSWITCH's, serves nothing of the admin API: both answer 404 as for any unknown path."""

    async def code_of(client: TestClient[Any, Any], method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        async with client.request(method, path, **kwargs) as response:
            return response.status, (await response.json())["error"]["code"]

    headers = {"Authorization": f"Bearer {admin.keys['super']}"}
    for operation in OPERATIONS:
        path = _fill(operation.full_path, admin.acme, ACME)
        assert await code_of(admin.v1, operation.method, path, headers=headers) == (404, "not_found"), path
    assert await code_of(admin.v1, "GET", "/api/v1/openapi.json") == (404, "not_found")
    assert (await admin.call("GET", "/api/v1/admin/domains"))[0] == 200  # the same key, on the admin listener

    call_uuid = uuid.uuid4()
    body = {"domain_uuid": str(ACME), "call_uuid": str(call_uuid)}
    for path in ["/api/v1/calls"] + [f"/api/v1/calls/{call_uuid}/{name}" for name in ("turns", "dtmf", "end")]:
        assert await code_of(admin.client, "POST", path, json=body, headers=headers) == (404, "not_found"), path
    # the same route on its own listener: there, a call it doesn't know
    assert await code_of(admin.v1, "POST", f"/api/v1/calls/{call_uuid}/end", json=body) == (404, "unknown_call")
    for client in (admin.client, admin.v1):
        async with client.get("/health") as response:
            assert response.status == 200


async def test_requests_without_a_valid_key_are_refused(admin: Admin) -> None:
    assert (await admin.call("GET", "/api/v1/admin/domains", None))[0] == 401
    status, error = await admin.call("GET", "/api/v1/admin/domains", "vai_not-a-real-key")
    assert status == 401 and error["error"]["code"] == "unauthorized"
    status, _ = await admin.call("GET", "/api/v1/admin/domains", "garbage")
    assert status == 401


# -- secretaries and directory -------------------------------------------------------------------------------


async def test_secretary_crud_and_validation_naming_the_field(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{GLOBEX}/secretary"
    status, secretary = await admin.call("GET", base, "globex")
    assert status == 200 and secretary["company"] == "Globex" and secretary["domain_uuid"] == str(GLOBEX)

    status, changed = await admin.call("PATCH", base, "globex", json={"greeting": "Globex here.", "max_turns": 9})
    assert status == 200 and changed["greeting"] == "Globex here." and changed["max_turns"] == 9
    # the running service sees the change at once (the cache was cleared)
    assert (await admin.runtime.secretaries.by_uuid(GLOBEX)).greeting == "Globex here."

    status, error = await admin.call("PATCH", base, "globex", json={"max_turns": 0})
    assert status == 400 and error["error"]["field"] == "max_turns"
    status, error = await admin.call("PATCH", base, "globex", json={"no_such_setting": 1})
    assert status == 400 and error["error"]["field"] == "no_such_setting"
    status, error = await admin.call("PUT", base, "globex", json={"name": "Zed"})
    assert status == 400 and error["error"]["field"] == "fallback_destination"
    status, error = await admin.call("PATCH", base, "globex", data=b"{not json")
    assert status == 400 and error["error"]["code"] == "invalid_json"

    # a fallback that FusionPBX doesn't know is refused, unless the check is switched off
    status, error = await admin.call("PATCH", base, "globex", json={"fallback_destination": "7777"})
    assert status == 400 and error["error"]["code"] == "unknown_target"
    assert error["error"]["field"] == "fallback_destination"
    status, _ = await admin.call(
        "PATCH", base + "?check_targets=false", "globex", json={"fallback_destination": "7777"}
    )
    assert status == 200

    # delete, then create again with PUT (201)
    assert (await admin.call("DELETE", base, "globex"))[0] == 200
    status, error = await admin.call("GET", base, "globex")
    assert status == 404 and error["error"]["code"] == "no_secretary"
    status, created = await admin.call(
        "PUT",
        base,
        "globex",
        json={"name": "Gail", "fallback_destination": "1001", "directory": [{"name": "Sales", "extension": "2000"}]},
    )
    assert status == 201 and created["name"] == "Gail" and created["directory"][0]["extension"] == "2000"
    assert (await admin.runtime.secretaries.by_uuid(GLOBEX)).name == "Gail"


async def test_directory_entries_are_checked_against_fusionpbx(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/directory"
    status, directory = await admin.call("GET", base, "acme")
    assert status == 200 and [t["extension"] for t in directory["directory"]] == ["1002", "1003", "1004", "3000"]

    status, error = await admin.call("POST", base, "acme", json={"name": "Nobody", "extension": "4242"})
    assert status == 400 and error["error"]["code"] == "unknown_target"
    assert error["error"]["field"] == "directory.4.extension"
    status, error = await admin.call("POST", base, "acme", json={"name": "Bad", "extension": "10 02"})
    assert status == 400 and error["error"]["field"] == "extension"
    status, error = await admin.call("POST", base, "acme", json={"name": "Sales again", "extension": "1002"})
    assert status == 400 and error["error"]["code"] == "duplicate"

    # the ring group, and Dr. Miller's voicemail box, are real FusionPBX destinations
    status, directory = await admin.call("POST", base, "acme", json={"name": "Sales Team", "extension": "2000"})
    assert status == 201 and directory["directory"][-1]["extension"] == "2000"
    status, directory = await admin.call(
        "PUT",
        base,
        "acme",
        json={
            "directory": [
                {"name": "Voicemail of Dr. Miller", "extension": "*991004", "aliases": ["miller's voicemail"]}
            ]
        },
    )
    assert status == 200 and [t["extension"] for t in directory["directory"]] == ["*991004"]
    status, error = await admin.call("PUT", base, "acme", json={"directory": [{"name": "X", "extension": "9"}]})
    assert status == 400 and error["error"]["field"] == "directory.0.extension"
    status, directory = await admin.call("DELETE", base + "/*991004", "acme")
    assert status == 200 and directory["directory"] == []
    assert (await admin.call("DELETE", base + "/1002", "acme"))[0] == 404


async def test_destinations_list_what_fusionpbx_offers(admin: Admin) -> None:
    status, found = await admin.call("GET", f"/api/v1/admin/domains/{ACME}/destinations", "acme")
    assert status == 200
    by_number = {d["number"]: d["kind"] for d in found["items"]}
    assert by_number == {
        "1001": "extension",
        "1002": "extension",
        "1003": "extension",
        "1004": "extension",
        "2000": "ring_group",
        "3000": "call_center_queue",
        "*991004": "voicemail",
    }


# -- calls ------------------------------------------------------------------------------------------------------


async def test_calls_list_filters_pagination_and_detail(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/calls"
    caller = f"77{uuid.uuid4().int % 10**8:08d}"
    for _ in range(3):
        await _seed(admin.runtime, ACME, caller, "hangup")
    status, page = await admin.call("GET", base + f"?limit=2&caller={caller}", "acme")
    assert status == 200 and len(page["items"]) == 2 and page["has_more"] is True
    status, rest = await admin.call("GET", base + f"?limit=2&offset=2&caller={caller}", "acme")
    assert len(rest["items"]) == 1 and rest["has_more"] is False
    assert {c["call_uuid"] for c in page["items"]}.isdisjoint(c["call_uuid"] for c in rest["items"])
    assert page["items"][0]["turn_count"] == 1 and page["items"][0]["caller_id_name"] == f"Caller {caller}"
    status, page = await admin.call("GET", base + f"?caller={caller[-5:]}&outcome=transfer", "acme")
    assert page["items"] == []
    status, page = await admin.call("GET", base + "?outcome=transfer&caller=5551001", "acme")
    assert str(admin.acme.call_uuid) in [c["call_uuid"] for c in page["items"]]
    assert {c["outcome"] for c in page["items"]} == {"transfer"}
    status, _ = await admin.call("GET", base + "?outcome=transferred", "acme")  # not an outcome a call has
    assert status == 400
    test_call = await _seed(admin.runtime, ACME, caller, "hangup", transport="test")  # the other mode
    status, page = await admin.call("GET", base + f"?caller={caller}&transport=test", "acme")
    assert status == 200 and [c["call_uuid"] for c in page["items"]] == [str(test_call.call_uuid)]
    status, page = await admin.call("GET", base + f"?caller={caller}&transport=turn", "acme")
    assert len(page["items"]) == 3 and {c["transport"] for c in page["items"]} == {"turn"}
    status, page = await admin.call("GET", base + f"?caller={caller}&transport=realtime", "acme")
    assert status == 200 and page["items"] == []
    status, error = await admin.call("GET", base + "?transport=sip", "acme")  # not a mode a call has
    assert status == 400 and error["error"]["field"] == "transport"
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, page = await admin.call("GET", base, "acme", params={"from": future})
    assert status == 200 and page["items"] == []

    status, error = await admin.call("GET", base + "?limit=500", "acme")
    assert status == 400 and error["error"]["field"] == "limit"
    status, error = await admin.call("GET", base + "?from=yesterday", "acme")
    assert status == 400 and error["error"]["field"] == "from"
    status, error = await admin.call("GET", base + "?offset=-1", "acme")
    assert status == 400 and error["error"]["field"] == "offset"

    status, call = await admin.call("GET", f"{base}/{admin.acme.call_uuid}", "acme")
    assert status == 200 and call["outcome"] == "transfer" and call["usage"] == {"tts_chars.piper": 8.0}
    turn = call["turns"][0]
    assert turn["caller_text"] == "hello" and turn["timings"] == {
        "stt_ms": 300,
        "brain_ms": 5,
        "tts_ms": 90,
        "total_ms": 400,
    }
    assert turn["reply_url"] is None
    status, audio = await admin.call("GET", turn["recording_url"], "acme")
    assert status == 200 and audio == WAV
    assert (await admin.call("GET", turn["recording_url"], "globex"))[0] == 404
    assert (await admin.call("GET", f"{base}/{uuid.uuid4()}", "acme"))[0] == 404
    assert (await admin.call("GET", f"{base}/not-a-uuid", "acme"))[0] == 400


# -- messages ----------------------------------------------------------------------------------------------------


async def test_messages_list_read_mark_handled_and_audio(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/messages"
    status, page = await admin.call("GET", base + "?status=new", "acme")
    assert status == 200 and page["items"][0]["message_uuid"] == str(admin.acme.message_uuid)  # newest first
    message = page["items"][0]
    assert message["transcript"] == "please call me back" and message["caller_id_number"] == "5551001"
    status, audio = await admin.call("GET", message["audio_url"], "acme")
    assert status == 200 and audio == WAV

    status, updated = await admin.call("PATCH", f"{base}/{admin.acme.message_uuid}", "acme", json={"status": "handled"})
    assert status == 200 and updated["status"] == "handled" and updated["handled_at"]
    status, page = await admin.call("GET", base + "?status=new", "acme")
    assert str(admin.acme.message_uuid) not in [m["message_uuid"] for m in page["items"]]
    status, page = await admin.call("GET", base + "?status=handled", "acme")
    assert str(admin.acme.message_uuid) in [m["message_uuid"] for m in page["items"]]
    status, error = await admin.call("PATCH", f"{base}/{admin.acme.message_uuid}", "acme", json={"status": "gone"})
    assert status == 400 and error["error"]["field"] == "status"
    assert (await admin.call("POST", f"{base}/{admin.acme.message_uuid}/redeliver", "acme"))[0] == 202


# -- credentials -------------------------------------------------------------------------------------------------


async def test_credentials_are_write_only_and_resolve_for_the_providers(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/credentials"
    status, created = await admin.call(
        "PUT", base + "/groq", "acme", json={"secret": "gsk-live-abcdefghijkl", "description": "Groq"}
    )
    assert status == 201 and created["items"][0]["hint"] == "…ijkl"
    status, listed = await admin.call("GET", base, "acme")
    assert "gsk-live-abcdefghijkl" not in str(listed) and {c["name"] for c in listed["items"]} == {"openai", "groq"}
    row = await admin.runtime.database.fetchrow(  # type: ignore[union-attr]
        "SELECT encrypted_secret FROM v_ai_provider_credentials WHERE credential_name = 'groq'"
    )
    assert row is not None and "gsk-live" not in row["encrypted_secret"]

    # a brain that refers to the stored key gets it; dumps and logs never show it
    status, _ = await admin.call(
        "PATCH",
        f"/api/v1/admin/domains/{ACME}/secretary",
        "acme",
        json={"providers": {"brain": [{"name": "openai", "api_key_ref": "groq"}]}},
    )
    assert status == 200
    config = await admin.runtime.secretaries.by_uuid(ACME)
    spec = config.providers.brain[0]
    assert spec.stored_key() == "gsk-live-abcdefghijkl"
    assert "gsk-live" not in config.model_dump_json() and "gsk-live" not in repr(config)

    status, error = await admin.call("PUT", base + "/bad name", "acme", json={"secret": "x"})
    assert status == 400 and error["error"]["field"] == "name"
    assert (await admin.call("DELETE", base + "/groq", "acme"))[0] == 200
    assert (await admin.call("DELETE", base + "/groq", "acme"))[0] == 404


# -- limits -----------------------------------------------------------------------------------------------------


async def test_a_json_body_over_the_limit_is_refused(admin: Admin) -> None:
    big = {"instructions": "x" * (80 * 1024)}
    status, error = await admin.call("PATCH", f"/api/v1/admin/domains/{ACME}/secretary", "acme", json=big)
    assert status == 413 and error["error"]["code"] == "too_large"


def _raw_request(port: int, head: bytes, body_chunks: int, chunk: bytes) -> tuple[bytes, int]:
    """Send a request head and then body chunks until the server answers or closes; returns (response head,
    body bytes we managed to send)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        for _ in range(body_chunks):
            try:
                data = sock.recv(4096)
                if data:
                    return data, sent
            except TimeoutError:
                pass
            try:
                sock.settimeout(10)
                sock.sendall(chunk)
                sock.settimeout(0.05)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        try:
            return sock.recv(4096), sent
        except (ConnectionResetError, TimeoutError):
            return b"", sent


async def test_a_200_mb_upload_is_refused_early_without_buffering(admin: Admin) -> None:
    port = admin.client.port
    assert port is not None
    path = f"/api/v1/admin/domains/{ACME}/documents?filename=big.txt"
    size = 200 * 1024 * 1024
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin.keys['acme']}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer, sent = await asyncio.to_thread(_raw_request, port, head, 3200, b"a" * 65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * 1024 * 1024  # answered long before 200 MB went over the wire

    # no Content-Length (chunked): counted while it arrives, refused once past the limit (1 MiB here)
    chunk = b"10000\r\n" + b"a" * 65536 + b"\r\n"
    head = (
        f"PUT /api/v1/admin/domains/{ACME}/secretary HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {admin.keys['acme']}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer, sent = await asyncio.to_thread(_raw_request, port, head, 3200, chunk)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * 1024 * 1024


# -- the OpenAPI document -------------------------------------------------------------------------------------


async def test_openapi_document_matches_the_routes_and_is_valid(admin: Admin) -> None:
    async with admin.client.get("/api/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)
    served = {
        (route.method, route.resource.canonical)
        for route in admin.client.app.router.routes()  # type: ignore[union-attr]
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/admin")
        and route.method != "HEAD"
    }
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert served == described
    assert len(described) == len(OPERATIONS)


async def test_without_a_database_the_admin_api_says_what_is_missing(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    runtime = Runtime.create(make_settings(messages={"enabled": False}), models=models)
    async with (
        TestClient(TestServer(create_admin_app(runtime, own_runtime=True))) as client,
        client.get("/api/v1/admin/domains", headers={"Authorization": "Bearer vai_x"}) as response,
    ):
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "database_required"


# -- knowledge documents (against secretary.knowledge) ----------------------------------------------------------

GUIDE = b"""# Acme repairs

Acme repairs broken hovercraft fans within three working days at the Elm Street workshop.
Warranty claims need the original receipt and the serial number printed under the seat.
"""


async def test_documents_upload_list_reindex_delete(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/documents"
    form = FormData()
    form.add_field("file", GUIDE, filename="repairs.md", content_type="text/markdown")
    status, document = await admin.call("POST", base, "acme", data=form)
    assert status == 201, document
    assert document["status"] == "indexed" and document["chunk_count"] >= 1 and document["filename"] == "repairs.md"
    status, raw = await admin.call(
        "POST",
        base + "?filename=hours-note.txt",
        "acme",
        data=b"The Elm Street workshop closes early on Fridays, at 3 PM.",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 201 and raw["content_type"].startswith("text/plain")

    status, page = await admin.call("GET", base + "?limit=1", "acme")
    assert status == 200 and len(page["items"]) == 1 and page["has_more"] is True
    one = f"{base}/{document['document_uuid']}"
    status, fetched = await admin.call("GET", one, "acme")
    assert status == 200 and fetched["document_uuid"] == document["document_uuid"]
    assert (await admin.call("GET", one, "globex"))[0] == 404

    chunks = await admin.runtime.knowledge.search(str(ACME), "How long does a hovercraft fan repair take?")
    assert chunks and "three working days" in chunks[0].text and chunks[0].source.startswith("repairs.md")
    assert not [
        c for c in await admin.runtime.knowledge.search(str(GLOBEX), "hovercraft fan repair") if "Elm Street" in c.text
    ]

    status, reindexed = await admin.call("POST", one + "/reindex", "acme")
    assert status == 200 and reindexed["chunks_indexed"] == document["chunk_count"]
    status, everything = await admin.call("POST", base + "/reindex", "acme")
    assert status == 200 and everything["chunks_indexed"] >= document["chunk_count"] + 1
    assert (await admin.call("DELETE", one, "acme"))[0] == 200
    assert (await admin.call("GET", one, "acme"))[0] == 404
    assert (await admin.call("POST", one + "/reindex", "acme"))[0] == 404
    assert not [
        c
        for c in await admin.runtime.knowledge.search(str(ACME), "hovercraft fan repair days")
        if "three working days" in c.text
    ]


async def test_bad_documents_get_clear_errors(admin: Admin) -> None:
    base = f"/api/v1/admin/domains/{ACME}/documents"

    async def upload(filename: str, content: bytes, content_type: str) -> tuple[int, Any]:
        form = FormData()
        form.add_field("file", content, filename=filename, content_type=content_type)
        return await admin.call("POST", base, "acme", data=form)

    status, error = await upload("brochure.pdf", b"this is not a PDF at all", "application/pdf")
    assert status == 422 and error["error"]["code"] == "bad_document"
    status, error = await upload("tool.exe", b"MZ\x90\x00binary", "application/octet-stream")
    assert status == 415 and error["error"]["code"] == "unsupported_document"
    status, error = await upload("empty.txt", b"", "text/plain")
    assert status == 422 and error["error"]["field"] == "file"
    status, error = await admin.call("POST", base, "acme", data=b"text", headers={"Content-Type": "text/plain"})
    assert status == 400 and error["error"]["field"] == "filename"
    form = FormData()
    form.add_field("other", b"x", filename="x.txt")
    status, error = await admin.call("POST", base, "acme", data=form)
    assert status == 400 and error["error"]["field"] == "file"

    # scripts and styles of an HTML page never reach the index
    page = (
        b"<html><head><style>.secretword{color:red}</style><script>alert('scriptsecret')</script></head>"
        b"<body><h1>Parking</h1><p>Visitors park free of charge in the north garage.</p></body></html>"
    )
    status, document = await upload("parking.html", page, "text/html")
    assert status == 201 and document["status"] == "indexed"
    found = await admin.runtime.knowledge.search(str(ACME), "scriptsecret alert secretword parking garage")
    assert found and all("scriptsecret" not in c.text and "secretword" not in c.text for c in found)

    # a domain that exists in FusionPBX but has no secretary
    hooli = uuid.uuid4()
    assert admin.runtime.database is not None
    await admin.runtime.database.execute(
        "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled) VALUES ($1, $2, true)",
        hooli,
        f"hooli-{hooli.hex[:6]}.example.com",
    )
    form = FormData()
    form.add_field("file", GUIDE, filename="guide.md", content_type="text/markdown")
    status, error = await admin.call("POST", f"/api/v1/admin/domains/{hooli}/documents", "super", data=form)
    assert status == 404 and error["error"]["code"] == "no_secretary"


async def test_a_document_past_its_extraction_limits_is_a_clear_error_and_listed_as_failed(admin: Admin) -> None:
    """A decompression bomb (22 KiB of PDF, ~25 s of pypdf) answers 422 once its CPU second is spent, not
    after half a minute; meanwhile the domain's next upload is refused with 429 instead of queueing."""
    base = f"/api/v1/admin/domains/{ACME}/documents"
    form = FormData()
    form.add_field("file", build_pdf([["Anvils and rocket skates " * 2] * 100_000]), filename="bomb.pdf")
    upload = asyncio.create_task(admin.call("POST", base, "acme", data=form))
    await until(lambda: admin.runtime.knowledge.ingest.queue.pending(ACME) == 1)
    status, error = await admin.call(
        "POST", base + "?filename=note.txt", "acme", data=b"Closed on Sunday.", headers={"Content-Type": "text/plain"}
    )
    assert status == 429 and error["error"]["code"] == "too_many_documents", error
    status, error = await upload
    reason = "extraction exceeded its CPU time limit (1 s)"
    assert status == 422 and error["error"]["code"] == "extraction_limit", error
    assert error["error"]["message"].startswith(f"bomb.pdf: {reason} (listed as failed: ")
    status, page = await admin.call("GET", base + "?limit=20", "acme")
    listed = [(d["status"], d["error"], d["chunk_count"]) for d in page["items"] if d["filename"] == "bomb.pdf"]
    assert status == 200 and listed == [("failed", reason, 0)]
    assert not [d for d in page["items"] if d["filename"] == "note.txt"]


async def test_isolation_end_to_end_a_caller_never_hears_another_domains_knowledge(
    admin: Admin, speech: Speech
) -> None:
    """Globex's admin uploads a fact; Globex's caller hears it; Acme's caller, asking the same, hears that the
    secretary doesn't have that information; and Acme's key can't see Globex's call."""
    form = FormData()
    form.add_field(
        "file",
        b"Globex hovercraft come with a lifetime warranty on the engine.",
        filename="warranty.txt",
        content_type="text/plain",
    )
    status, _ = await admin.call("POST", f"/api/v1/admin/domains/{GLOBEX}/documents", "globex", data=form)
    assert status == 201
    form = FormData()  # Acme has knowledge of its own, just not this
    form.add_field(
        "file",
        b"Acme delivers office chairs within five working days.",
        filename="delivery.txt",
        content_type="text/plain",
    )
    status, _ = await admin.call("POST", f"/api/v1/admin/domains/{ACME}/documents", "acme", data=form)
    assert status == 201

    async def ask(domain: uuid.UUID) -> tuple[str, str]:
        call_uuid = str(uuid.uuid4())
        async with admin.v1.post(
            "/api/v1/calls", json={"domain_uuid": str(domain), "call_uuid": call_uuid, "caller_id_number": "5550000"}
        ) as response:
            assert response.status == 200
        body = wav_bytes(speech.say("What is the warranty on the hovercraft engine?"))
        async with admin.v1.post(
            f"/api/v1/calls/{call_uuid}/turns", data=body, headers={"Content-Type": "audio/wav"}
        ) as response:
            assert response.status == 200, await response.text()
            said = (await response.json())["say"]["text"]
        async with admin.v1.post(f"/api/v1/calls/{call_uuid}/end", json={}) as response:
            assert response.status == 200
        return call_uuid, said

    globex_call, globex_said = await ask(GLOBEX)
    assert "lifetime warranty" in globex_said.lower()
    _, acme_said = await ask(ACME)
    assert "don't have that information" in acme_said.lower() and "lifetime" not in acme_said.lower()
    status, error = await admin.call("GET", f"/api/v1/admin/domains/{GLOBEX}/calls/{globex_call}", "acme")
    assert status == 404 and error["error"]["code"] == "unknown_domain"
    status, error = await admin.call("GET", f"/api/v1/admin/domains/{ACME}/calls/{globex_call}", "acme")
    assert status == 404 and error["error"]["code"] == "unknown_call"
    assert (await admin.call("GET", f"/api/v1/admin/domains/{GLOBEX}/calls/{globex_call}", "globex"))[0] == 200
