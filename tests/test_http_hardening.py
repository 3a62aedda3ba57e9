"""What a hostile or broken client can do to ivr_service over real sockets (issue 9): descriptors and worker
threads it can't pin through the spool, bad input that gets a 4xx naming the problem and loses nothing, keys
that never reach a log, and connections that can't be held open by sending slowly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr_service.app import RUNTIME, create_admin_app, create_app
from ivr_service.http_server import LimitedSite, handler_args
from secretary.calls.inbox import INBOX_MODE
from secretary.observability import configure_logging
from secretary.runtime import Runtime
from secretary.settings import IvrSettings, Settings
from secretary.speech.audio import wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.support import admin_env
from tests.support.admin_env import ACME
from tests.support.speech import Speech

SECONDS = 60  # generous bound for "the server answered / closed": never a timing assertion


async def exchange(port: int, request: bytes) -> tuple[int, Any]:
    """Send raw bytes, read until the server closes; (status, JSON body or raw body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), SECONDS)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def http(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, key: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = "\r\n".join(lines).encode() + (b"\r\nAuthorization: Bearer " + key if key else b"")
    return head + b"\r\n\r\n" + body


@pytest.fixture
async def serve(make_settings: Callable[..., Settings], models: LocalModels) -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def start(admin: bool = False, **overrides: Any) -> TestServer:
        runtime = Runtime.create(make_settings(**overrides), models=models)
        server = TestServer((create_admin_app if admin else create_app)(runtime, own_runtime=True))
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def start_call(port: int, **fields: str) -> dict[str, Any]:
    body = {"domain_name": "acme.example.com", "call_uuid": str(uuid.uuid4())} | fields
    status, started = await exchange(port, http("POST", "/api/v1/calls", json.dumps(body).encode()))
    assert status == 200, started
    return dict(started)


def turn(call_uuid: str, recording_file: str) -> bytes:
    return http("POST", f"/api/v1/calls/{call_uuid}/turns", json.dumps({"recording_file": recording_file}).encode())


# -- the spool (items 8 and 9) ----------------------------------------------------------------------------------


async def test_a_recording_file_naming_the_inbox_folder_is_a_400_and_leaks_no_descriptor(serve: Any) -> None:
    server = await serve()
    started = await start_call(server.port)
    inbox = str(Path(started["record"]["file"]).parent)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(60):
        status, error = await exchange(server.port, turn(started["call_uuid"], inbox))
        assert status == 400, error
        assert error["error"]["field"] == "recording_file" and "regular file" in error["error"]["message"]
    assert len(os.listdir("/proc/self/fd")) < before + 10  # 60 requests used to leave 60 descriptors open


async def test_a_fifo_planted_in_the_inbox_is_refused_without_blocking_a_worker(serve: Any) -> None:
    server = await serve()
    started = await start_call(server.port)
    inbox = Path(started["record"]["file"]).parent
    assert stat.S_IMODE(inbox.stat().st_mode) == INBOX_MODE and not inbox.stat().st_mode & 0o007
    assert not inbox.parent.stat().st_mode & 0o007  # the domain's folder isn't open to every user either
    fifo = inbox / "turn-001.wav"
    os.mkfifo(fifo)
    try:
        status, error = await exchange(server.port, turn(started["call_uuid"], str(fifo)))
        assert status == 400 and error["error"]["code"] == "path_outside_spool", error
        status, health = await exchange(server.port, http("GET", "/health"))
        assert status == 200, health
    finally:  # on a server that blocks in open(), a writer releases the stuck thread
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


# -- keys never reach a log (item 10) ---------------------------------------------------------------------------


@pytest.mark.parametrize("listener", ["v1", "admin"])
@pytest.mark.parametrize(
    "split", [b"\x00", b"\r", b"\r\n ", b"\n "], ids=["nul", "bare-cr", "folded-line", "folded-after-lf"]
)
async def test_a_malformed_authorization_header_never_logs_the_key(
    serve: Any, split: bytes, listener: str, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", "json")  # our structlog output, on the captured stderr
    root.addHandler(caplog.handler)
    try:
        server = await serve(admin=listener == "admin")
        key = "vai_" + secrets.token_urlsafe(32)
        head, tail = key[:20], key[20:]
        status, _ = await exchange(
            server.port, http("GET", "/api/v1/admin/domains", key=head.encode() + split + tail.encode())
        )
        assert status == 400
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    logged = caplog.text + capsys.readouterr().err
    assert "Error handling request" in logged  # the error itself is still logged...
    assert head[4:] not in logged and tail not in logged  # ...but no part of the key


def test_parser_errors_are_logged_without_their_text_whatever_parser_quoted_the_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp's pure-Python parser (no C extension: AIOHTTP_NO_EXTENSIONS, or no wheel) puts the raw header in
    the error's own reason; the v1 shared secret and key-shaped text are redacted from anything else."""
    from aiohttp.http_exceptions import InvalidHeader

    shared = "s3cret-" + secrets.token_hex(16)
    logger = handler_args(IvrSettings(shared_secret=shared))["logger"]
    key = "vai_" + secrets.token_urlsafe(32)
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        error = InvalidHeader(f"Authorization: Bearer {key[:10]}\x00{key[10:]}".encode())
        logger.error("Error handling request", exc_info=error)
        logger.debug(f"request headers: X-VoiceAI-Secret: {shared}; token {key}; again {shared}")
    logged = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert "InvalidHeader 400" in logged
    assert shared not in logged and key[:10] not in logged and key[10:] not in logged


# -- bad input: a 4xx naming the problem, and nothing lost (item 11) ----------------------------------------------


@dataclass
class Listeners:
    """The v1 and the admin listener of one runtime: a request goes to the one that serves its path."""

    v1: TestServer
    admin: TestServer

    def port_for(self, path: str) -> int:
        return int((self.admin if path.startswith("/api/v1/admin") else self.v1).port)  # type: ignore[arg-type]


@pytest.fixture
async def admin_server(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels
) -> AsyncIterator[tuple[Listeners, dict[str, str]]]:
    runtime = Runtime.create(
        make_settings(database_url=writable_fusionpbx_url, messages={"enabled": False}), models=models
    )
    keys = await admin_env.api_keys(writable_fusionpbx_url)
    listeners = Listeners(TestServer(create_app(runtime)), TestServer(create_admin_app(runtime, own_runtime=True)))
    await listeners.v1.start_server()
    await listeners.admin.start_server()
    yield listeners, keys
    await listeners.v1.close()
    await listeners.admin.close()


DOCUMENTS = f"/api/v1/admin/domains/{ACME}/documents"
BOUNDARY = "hardening-boundary"


def multipart(part_headers: str, content: bytes) -> bytes:
    return f"--{BOUNDARY}\r\n{part_headers}\r\n\r\n".encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


FILE_PART = 'Content-Disposition: form-data; name="file"; filename="page.html"\r\nContent-Type: text/html'
NEW_CALL = {"domain_name": "acme.example.com", "call_uuid": "c0000000-0000-4000-8000-000000000001"}
BAD_INPUTS: dict[str, tuple[str, str, bytes, dict[str, str], bytes, int, str]] = {
    # name: (method, path, body, headers, raw bearer key or b"" for the acme key, status, field)
    "json-nested-200k-deep": ("POST", "/api/v1/calls", b"[" * 200_000 + b"]" * 200_000, {}, b"", 400, "body"),
    "admin-json-nested-200k-deep": (
        "PUT",
        f"/api/v1/admin/domains/{ACME}/secretary",
        b"[" * 200_000 + b"]" * 200_000,
        {"Content-Type": "application/json"},
        b"",
        400,
        "body",
    ),
    "integer-of-5000-digits": (
        "POST",
        "/api/v1/calls",
        json.dumps(NEW_CALL).encode()[:-1] + b', "caller_id_number": ' + b"7" * 5000 + b"}",
        {},
        b"",
        400,
        "body",
    ),
    "nul-in-domain-name": (
        "POST",
        "/api/v1/calls",
        json.dumps(NEW_CALL | {"domain_name": "acme.example.com\x00"}).encode(),
        {},
        b"",
        400,
        "domain_name",
    ),
    "nul-in-an-admin-text-field": (
        "PATCH",
        f"/api/v1/admin/domains/{ACME}/secretary",
        json.dumps({"greeting": "Hello\x00there"}).encode(),
        {"Content-Type": "application/json"},
        b"",
        400,
        "greeting",
    ),
    "nul-in-domain-path": ("GET", "/api/v1/admin/domains/acme%00.example.com/secretary", b"", {}, b"", 400, "domain"),
    "non-utf8-bearer-key": ("GET", "/api/v1/admin/domains", b"", {}, b"vai_\xff\xfe\xc3(", 401, ""),
    "multipart-without-boundary": (
        "POST",
        DOCUMENTS,
        multipart(FILE_PART, b"<p>x</p>"),
        {"Content-Type": "multipart/form-data"},
        b"",
        400,
        "file",
    ),
    "multipart-8k-part-header": (
        "POST",
        DOCUMENTS,
        multipart(FILE_PART + "\r\nX-Padding: " + "p" * 8192, b"<p>x</p>"),
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        b"",
        400,
        "file",
    ),
}


@pytest.mark.parametrize("writable_fusionpbx_url", ["5.5"], indirect=True)
@pytest.mark.parametrize("name", list(BAD_INPUTS))
async def test_bad_input_gets_a_4xx_naming_the_problem(admin_server: Any, name: str) -> None:
    server, keys = admin_server
    method, path, body, headers, key, status, field = BAD_INPUTS[name]
    got, error = await exchange(server.port_for(path), http(method, path, body, headers, key or keys["acme"].encode()))
    assert got == status, error
    assert error["error"]["message"] and error["error"].get("field", "") == field, error


@pytest.mark.parametrize("writable_fusionpbx_url", ["5.5"], indirect=True)
@pytest.mark.parametrize("charset", ["undefined", "idna", "punycode", "x-no-such-charset"])
async def test_html_with_an_unusable_meta_charset_is_read_like_a_browser_reads_it(
    admin_server: Any, charset: str
) -> None:
    server, keys = admin_server
    page = f'<html><head><meta charset="{charset}"></head><body><p>Parking is free at the north garage.</p>'
    body = multipart(FILE_PART, page.encode() + b"\xff</body></html>")
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    status, document = await exchange(
        server.port_for(DOCUMENTS), http("POST", DOCUMENTS, body, headers, keys["acme"].encode())
    )
    assert status == 201 and document["status"] == "indexed", document


@pytest.mark.parametrize("writable_fusionpbx_url", ["5.5"], indirect=True)
async def test_a_nul_in_the_caller_id_loses_neither_the_record_nor_the_message(
    admin_server: Any, speech: Speech
) -> None:
    server, _ = admin_server
    runtime: Runtime = server.v1.app[RUNTIME]
    started = await start_call(server.v1.port, caller_id_name="Bob\x00Smith", caller_id_number="555\x00\ud8001")
    call = started["call_uuid"]
    for text in ("I would like to leave a message for sales.", "Yes."):  # the details read back, then confirmed
        wav = wav_bytes(speech.say(text))
        status, asked = await exchange(
            server.v1.port, http("POST", f"/api/v1/calls/{call}/turns", wav, {"Content-Type": "audio/wav"})
        )
    assert status == 200 and asked["action"]["type"] == "take_message", asked
    Path(asked["record"]["file"]).write_bytes(wav_bytes(speech.say("Please call me back about my invoice.")))
    status, taken = await exchange(server.v1.port, turn(call, asked["record"]["file"]))
    assert status == 200 and taken["action"]["type"] == "hangup", taken
    status, ended = await exchange(server.v1.port, http("POST", f"/api/v1/calls/{call}/end", b"{}"))
    assert status == 200, ended

    record = await runtime.call_records.get(ACME, uuid.UUID(call))
    assert record is not None and record.caller_id_name == "Bob\ufffdSmith"
    assert record.caller_id_number == "555\ufffd\ufffd1"
    messages = [m for m in await runtime.messages.list_messages(ACME) if str(m.call_uuid) == call]
    assert len(messages) == 1 and messages[0].caller_id_name == "Bob\ufffdSmith"
    assert "invoice" in messages[0].transcript.lower()


# -- connections can't be held open (item 13) -------------------------------------------------------------------


async def test_a_client_sending_headers_a_byte_at_a_time_is_disconnected(serve: Any) -> None:
    server = await serve(ivr={"header_timeout_s": 0.5})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def dribble() -> None:
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)  # the attack is slowness itself

    sender = asyncio.create_task(dribble())
    try:
        closed = await asyncio.wait_for(reader.read(), SECONDS)  # EOF: the server hung up
        still_sending = not sender.done()
    finally:
        sender.cancel()
        writer.close()
    assert closed == b"" and still_sending


async def test_a_body_that_stops_arriving_gets_a_408(serve: Any) -> None:
    server = await serve(ivr={"body_timeout_s": 0.5})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'POST /api/v1/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{"domain')
    await writer.drain()
    try:
        response = await asyncio.wait_for(reader.read(), SECONDS)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), response
    assert json.loads(body)["error"]["code"] == "body_timeout"


async def test_connections_past_the_cap_get_a_503(make_settings: Callable[..., Settings], models: LocalModels) -> None:
    runtime = Runtime.create(make_settings(), models=models)
    runner = web.AppRunner(create_app(runtime, own_runtime=True))
    await runner.setup()
    site = LimitedSite(runner, "127.0.0.1", 0, max_connections=2)
    await site.start()
    try:
        held = [await asyncio.open_connection("127.0.0.1", site.port) for _ in range(2)]
        assert site.limit is not None
        status, error = await exchange(site.port, http("GET", "/health"))
        assert status == 503 and error["error"]["code"] == "too_many_connections"
        reader, writer = held.pop()
        writer.write(http("GET", "/health"))  # Connection: close; the server counts it gone before the EOF arrives
        assert (await asyncio.wait_for(reader.read(), SECONDS)).startswith(b"HTTP/1.1 200")
        writer.close()
        status, _ = await exchange(site.port, http("GET", "/health"))
        assert status == 200
        for _, writer in held:
            writer.close()
    finally:
        await runner.cleanup()
