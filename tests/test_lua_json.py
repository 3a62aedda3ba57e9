"""The Lua modules the script ships (`voiceai.json`, `voiceai.http`), run in real Lua 5.1 to 5.4 (mod_lua is
built against whichever the system has), checked against Python's json module and the mod_curl emulation."""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freeswitch.lua_sim import LUA_DIR
from freeswitch.mod_curl import separate_string, url_decode

VERSIONS = ["lua51", "lua52", "lua53", "lua54"]


class LuaModules:
    """A bare Lua state (bytes in, bytes out) with the script folder on package.path."""

    def __init__(self, version: str) -> None:
        lupa = importlib.import_module(f"lupa.{version}")
        self.error = lupa.LuaError
        self.runtime = lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True)
        self.runtime.globals().package.path = f"{LUA_DIR}/?.lua".encode()
        self.json = self.runtime.eval('(require("voiceai.json"))')
        self.http = self.runtime.eval('(require("voiceai.http"))')
        self._roundtrip = self.runtime.eval("function(j, text) return j.encode(j.decode(text)) end")
        self._decode_kind = self.runtime.eval("function(j, text) local v = j.decode(text); return type(v), v end")

    def roundtrip(self, text: bytes) -> bytes:
        return bytes(self._roundtrip(self.json, text))

    def decode_scalar(self, text: bytes) -> tuple[bytes, Any]:
        kind, value = self._decode_kind(self.json, text)
        return bytes(kind), value

    def encode(self, value: Any) -> bytes:
        return bytes(self.json.encode(value))


@pytest.fixture(scope="module", params=VERSIONS)
def lua(request: pytest.FixtureRequest) -> LuaModules:
    return LuaModules(request.param)


@pytest.fixture(scope="module")
def lua53() -> LuaModules:
    return LuaModules("lua53")


json_values = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, min_size=1, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, min_size=1, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans())
def test_round_trip_matches_python(lua53: LuaModules, value: Any, ensure_ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii).encode()
    assert json.loads(lua53.roundtrip(text)) == value


def test_round_trip_nested_document(lua: LuaModules) -> None:
    document = {
        "call_uuid": "0f0e4b8e-6f55-4a4b-9d0c-2d3d8a1c9a11",
        "say": {"text": "We are open Monday to Friday, 9 AM to 5 PM.", "audio_file": "/var/spool/a.wav"},
        "action": {"type": "transfer", "destination": "1002", "context": "acme.example.com"},
        "record": {"file": "/x/turn-002.wav", "max_seconds": 15, "silence_threshold": 300, "silence_seconds": 2.5},
        "timings": {"stt_ms": 612, "total_ms": 1344},
        "list": [1, [2, [3, {"deep": [True, False]}]]],
        "negative": -42,
        "small": 0.1,
        "large": 1e300,
    }
    for ensure_ascii in (True, False):
        assert json.loads(lua.roundtrip(json.dumps(document, ensure_ascii=ensure_ascii).encode())) == document


def test_escapes_decode_and_encode(lua: LuaModules) -> None:
    kind, value = lua.decode_scalar(rb'"q\" b\\ s\/ \b\f\n\r\t end"')
    assert kind == b"string" and bytes(value) == b'q" b\\ s/ \x08\x0c\n\r\t end'
    encoded = lua.encode(b'q" b\\ \x08\x0c\n\r\t \x01\x1f\x7f')
    assert json.loads(encoded) == 'q" b\\ \x08\x0c\n\r\t \x01\x1f\x7f'
    assert b"\n" not in encoded and b"\x01" not in encoded  # control characters never go out raw


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rb'"\u00e9t\u00e9"', "été".encode()),
        (rb'"\u20ac"', "€".encode()),
        (rb'"\ud83d\ude00"', "😀".encode()),
        (rb'"\ud83d x"', "\ufffd x".encode()),  # a lone surrogate has no UTF-8 form
        ('"raw ünïcödé 😀"'.encode(), "raw ünïcödé 😀".encode()),
    ],
)
def test_unicode_decodes_to_utf8(lua: LuaModules, text: bytes, expected: bytes) -> None:
    kind, value = lua.decode_scalar(text)
    assert kind == b"string" and bytes(value) == expected


def test_invalid_utf8_is_replaced_not_sent(lua: LuaModules) -> None:
    # A caller name in Latin-1 from a SIP header: the service only accepts UTF-8.
    assert json.loads(lua.encode(b"Jos\xe9 M\xfcller")) == "Jos\ufffd M\ufffdller"
    assert json.loads(lua.encode(b"\xed\xa0\x80 \xc0\xaf")) == "\ufffd\ufffd\ufffd \ufffd\ufffd"
    assert bytes(lua.json.clean_utf8(b"ok \xff end")) == "ok \ufffd end".encode()


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        (b"0", b"number", 0),
        (b"-12", b"number", -12),
        (b"3.25", b"number", 3.25),
        (b"1e3", b"number", 1000),
        (b"-2.5E-3", b"number", -0.0025),
        (b"true", b"boolean", True),
        (b"false", b"boolean", False),
        (b"null", b"nil", None),
        (b"  {}  ", b"table", None),
    ],
)
def test_scalars(lua: LuaModules, text: bytes, kind: bytes, expected: Any) -> None:
    got_kind, value = lua.decode_scalar(text)
    assert got_kind == kind
    if kind == b"number":
        assert math.isclose(value, expected)
    elif kind != b"table":
        assert value == expected


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"{",
        b'{"a" 1}',
        b'{"a":1,}',
        b"[1,]",
        b"[1 2]",
        b'"unterminated',
        b'"tab\tinside"',
        b"01",
        b"1.",
        b"-",
        b".5",
        b"1e",
        b"nul",
        b"tru",
        b"{} x",
        b"{'a':1}",
        b'"\\x"',
        b'"\\u12"',
        b"[" * 100 + b"]" * 100,
    ],
)
def test_invalid_json_raises(lua: LuaModules, text: bytes) -> None:
    with pytest.raises(lua.error):
        lua.decode_scalar(text)


def test_encode_refuses_what_json_cannot_hold(lua: LuaModules) -> None:
    unencodable = [
        "return 0/0",
        "return math.huge",
        "return function() end",
        "return {1, 2, x = 3}",
        "local t = {}; t.self = t; return t",
    ]
    for source in unencodable:
        value = lua.runtime.execute(source.encode())
        with pytest.raises(lua.error):
            lua.encode(value)


def test_encoding_is_deterministic(lua: LuaModules) -> None:
    value = lua.runtime.execute(b'return {b = 1, a = {3, 2, 1}, c = "x", d = 2^53, e = -0.5}')
    assert lua.encode(value) == b'{"a":[3,2,1],"b":1,"c":"x","d":9007199254740992,"e":-0.5}'


def test_url_encoding_survives_mod_curl(lua: LuaModules) -> None:
    every_byte = bytes(range(256))
    encoded = bytes(lua.http.url_encode(every_byte))
    assert set(encoded) <= set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")
    assert url_decode(encoded) == every_byte
    # As the post data of a command line: one token, byte for byte, whatever the JSON held.
    line = "http://127.0.0.1:8086/api/v1/calls json post " + encoded.decode()
    tokens = separate_string(line, 10)
    assert tokens[-2:] == ["post", encoded.decode()]
    assert url_decode(tokens[-1].encode()) == every_byte


def test_url_encoding_of_a_request(lua: LuaModules) -> None:
    payload = json.dumps({"caller_id_name": 'O\'Brien "Bob" \\ 100%', "digits": "1#"}).encode()
    encoded = bytes(lua.http.url_encode(payload))
    assert b" " not in encoded and b"'" not in encoded and b"\\" not in encoded and b"$" not in encoded
    assert json.loads(url_decode(encoded)) == json.loads(payload)
    assert bytes(lua.http.url_encode(b"a b+c/d")) == b"a%20b%2Bc%2Fd"


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("Alice", 64, "Alice"),
        ("é" * 10, 5, "éé"),
        ("a" + "😀" * 3, 6, "a😀"),
        ("abcdef", 3, "abc"),
    ],
)
def test_clean_text_cuts_on_character_boundaries(lua: LuaModules, value: str, limit: int, expected: str) -> None:
    assert bytes(lua.http.clean_text(value.encode(), limit)).decode() == expected


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8086", True),
        ("https://voiceai.example.com/base", True),
        ("http://[::1]:8086", True),
        ("ftp://127.0.0.1", False),
        ("http://host name", False),
        ("http://host/'x'", False),
        ("http://host/a\\b", False),
        ("", False),
    ],
)
def test_base_url_check(lua: LuaModules, url: str, ok: bool) -> None:
    assert bool(lua.http.valid_base_url(url.encode())) is ok
