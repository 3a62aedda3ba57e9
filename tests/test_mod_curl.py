"""The mod_curl emulation against a real HTTP server: FreeSWITCH's argument splitting and URL-decoding, the
`json` output format of the 1.10 releases and of master, the 64000-byte body cap, errors and timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from freeswitch.mod_curl import DEFAULT_MAX_BYTES, SYNTAX, ModCurl, separate_string, url_decode
from tests.support.threaded_app import serve_app


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "content_type": request.headers.get("Content-Type"),
            "user_agent": request.headers.get("User-Agent"),
            "body": (await request.read()).decode("utf-8", "replace"),
        }
    )


async def _status(request: web.Request) -> web.Response:
    status = int(request.match_info["status"])
    return web.json_response({"error": {"code": "down", "message": "x"}}, status=status)


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * int(request.match_info["size"]), content_type="text/plain")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.Response(text="late")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/status/{status}", _status)
    app.router.add_get("/big/{size}", _big)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/empty", _empty)
    app.router.add_get("/nul", _nul)
    with serve_app(app) as url:
        yield url


async def _empty(request: web.Request) -> web.Response:
    return web.Response(body=b"")


async def _nul(request: web.Request) -> web.Response:
    return web.Response(body=b"abc\0def")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("line", "limit", "tokens"),
    [
        ("a  b   c", 10, ["a", "b", "c"]),
        ("  lead trail  ", 10, ["lead", "trail"]),
        ("a 'b c' d", 10, ["a", "b c", "d"]),
        ("a\\sb c\\'d", 10, ["a b", "c'd"]),
        ("a \\\\ b", 10, ["a", "\\", "b"]),
        ("a b c d e", 3, ["a", "b", "c d e"]),
        ("^^;a;b c;d", 10, ["a", "b c", "d"]),
        ("", 10, []),
    ],
)
def test_separate_string(line: str, limit: int, tokens: list[str]) -> None:
    assert separate_string(line, limit) == tokens


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"%7B%22a%22%3A1%7D", b'{"a":1}'),
        (b"a+b", b"a+b"),  # '+' is not a space for switch_url_decode
        (b"100%", b"100%"),
        (b"%zz", b"%zz"),
        (b"%4G!", b"\x04!"),  # sscanf("%2x") reads one digit, the pointer still moves past two
        (b"plain", b"plain"),
    ],
)
def test_url_decode(raw: bytes, decoded: bytes) -> None:
    assert url_decode(raw) == decoded


def test_json_post_in_the_1_10_format(server: str) -> None:
    curl = ModCurl()
    out = curl.api(f"{server}/echo json timeout 5 content-type application/json post %7B%22x%22%3A%22a%20b%22%7D")
    envelope = json.loads(out)
    assert list(envelope) == ["status_code", "body", "version", "phrase", "headers"]
    assert envelope["status_code"] == "200"  # a string, as cJSON writes it in mod_curl
    assert envelope["version"] == "HTTP/1.1" and envelope["phrase"] == "OK"
    assert {"key": "Content-Type", "value": "application/json; charset=utf-8"} in envelope["headers"]
    sent = json.loads(envelope["body"])
    assert sent == {
        "method": "POST",
        "content_type": "application/json",
        "user_agent": "freeswitch-curl/1.0",
        "body": '{"x":"a b"}',
    }
    assert curl.exchanges[0].request_body == b'{"x":"a b"}'


def test_master_adds_the_exit_code(server: str) -> None:
    envelope = json.loads(ModCurl(flavour="master").api(f"{server}/echo json"))
    assert list(envelope)[:2] == ["exit_code", "status_code"]
    assert envelope["exit_code"] == "0" and json.loads(envelope["body"])["method"] == "GET"


def test_post_without_content_type_is_form_encoded(server: str) -> None:
    sent = json.loads(ModCurl().api(f"{server}/echo post a%3Db"))
    assert sent["content_type"] == "application/x-www-form-urlencoded" and sent["body"] == "a=b"


def test_plain_and_headers_output(server: str) -> None:
    assert json.loads(ModCurl().api(f"{server}/echo"))["method"] == "GET"
    with_headers = ModCurl().api(f"{server}/echo headers")
    assert with_headers.startswith(b"HTTP/1.1 200 OK\r\n\n") and with_headers.rstrip().endswith(b"}")


def test_error_status_keeps_the_body(server: str) -> None:
    envelope = json.loads(ModCurl().api(f"{server}/status/503 json"))
    assert envelope["status_code"] == "503" and envelope["phrase"] == "Service Unavailable"
    assert json.loads(envelope["body"])["error"]["code"] == "down"


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x"
    assert json.loads(ModCurl().api(f"{url} json")) == {"status_code": "0", "headers": []}
    assert json.loads(ModCurl(flavour="master").api(f"{url} json")) == {
        "exit_code": "7",
        "status_code": "0",
        "headers": [],
    }


def test_timeout(server: str) -> None:
    curl = ModCurl(flavour="master")
    envelope = json.loads(curl.api(f"{server}/slow json timeout 1"))
    assert envelope["exit_code"] == "28" and "body" not in envelope
    assert curl.exchanges[0].exit_code == 28


def test_body_cap(server: str) -> None:
    exact = json.loads(ModCurl().api(f"{server}/big/{DEFAULT_MAX_BYTES} json"))
    assert len(exact["body"]) == DEFAULT_MAX_BYTES
    over = json.loads(ModCurl(flavour="master").api(f"{server}/big/{DEFAULT_MAX_BYTES + 6000} json"))
    assert over["exit_code"] == "23" and over["status_code"] == "200"
    assert len(over.get("body", "")) < DEFAULT_MAX_BYTES  # what came before the piece that overflowed


def test_empty_and_nul_bodies(server: str) -> None:
    assert "body" not in json.loads(ModCurl().api(f"{server}/empty json"))
    assert json.loads(ModCurl().api(f"{server}/nul json"))["body"] == "abc"  # a C string ends at NUL


def test_usage_and_argument_limits(server: str) -> None:
    assert ModCurl().api("") == f"-ERR\n{SYNTAX}\n".encode()
    # Eleven tokens: 1.10 keeps ten, the tenth swallowing "post data", so no POST is made.
    line = f"{server}/echo json x x x x x x x post %41"
    assert json.loads(json.loads(ModCurl().api(line))["body"])["method"] == "GET"
    assert json.loads(json.loads(ModCurl(flavour="master").api(line))["body"])["body"] == "A"
    assert ModCurl(flavour="master").api(f"{server}/echo" + " x" * 30) == b""
