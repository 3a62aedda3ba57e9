"""The ESL wire format, sans-I/O: messages and commands split anywhere, events in JSON and plain form, and a
bounded fuzz whose only allowed failure is `EslProtocolError` (every crash it found is an @example)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from freeswitch.esl_protocol import (
    EslCommandParser,
    EslEvent,
    EslParser,
    EslProtocolError,
    command,
    event_json,
    event_plain,
    message,
)

HUGE = b"7" * 4400  # Python's int() refuses more than 4,300 digits, with a ValueError of its own
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)  # fast, the same on every run
# Pieces that reach the parser's corners, which random bytes rarely do: headers, lengths, JSON, URL escapes.
STREAMS = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"Content-Type: text/event-json", b"Content-Type: text/event-plain", b"Content-Type: api/response",
                     b"Content-Length: ", b"Reply-Text: +OK", b"Event-Name: CUSTOM", b":", b"\n", b"\n\n", b"\r\n",
                     b"{", b"}", b'"_body":', b'"x":', b"%", b"%ZZ", b"17", b"1_0", b"1e999", b"NaN", HUGE])
    | st.binary(max_size=8),
    max_size=24,
).map(b"".join)  # fmt: skip
AUTH_REQUEST = b"Content-Type: auth/request\n\n"
ACCEPTED = b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
API = b"Content-Type: api/response\nContent-Length: 14\n\n+OK Job done\n\n"


def test_replies_and_api_responses() -> None:
    messages = EslParser().feed(AUTH_REQUEST + ACCEPTED + API)
    assert [m.content_type for m in messages] == ["auth/request", "command/reply", "api/response"]
    assert messages[1].reply_text == "+OK accepted" and messages[1].ok
    assert messages[2].reply_text == "+OK Job done"
    parser = EslParser()
    assert parser.feed(b"Content-Type: api/response\nContent-Length: 20\n\n-ERR No such") == []  # body incomplete
    (partial,) = parser.feed(b" channel")
    assert not partial.ok
    (err,) = EslParser().feed(b"Content-Type: api/response\nContent-Length: 20\n\n-ERR No such channel")
    assert not err.ok


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=40))
def test_messages_split_at_any_byte_boundary_parse_the_same(cuts: list[int]) -> None:
    stream = AUTH_REQUEST + ACCEPTED + API + event_json(EslEvent({"Event-Name": "CUSTOM", "Unique-ID": "u"}, "{}"))
    parser, messages, position = EslParser(), [], 0
    for cut in cuts * 20:
        if position >= len(stream):
            break
        messages += parser.feed(stream[position : position + cut])
        position += cut
    messages += parser.feed(stream[position:])
    assert [m.content_type for m in messages] == ["auth/request", "command/reply", "api/response", "text/event-json"]


def test_json_event_round_trip() -> None:
    event = EslEvent(
        {"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_stream::play", "Unique-ID": "abc"},
        '{"audioDataType":"raw","sampleRate":8000,"file":"/tmp/abc_1.tmp.r8"}',
    )
    (parsed,) = EslParser().feed(event_json(event))
    assert parsed.event() == event
    assert parsed.event().json_body()["file"] == "/tmp/abc_1.tmp.r8"  # type: ignore[union-attr]


@given(st.dictionaries(st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12),
                       st.text(max_size=40), max_size=8), st.text(max_size=200))  # fmt: skip
def test_plain_event_round_trip_with_any_values(headers: dict[str, str], body: str) -> None:
    event = EslEvent({"Event-Name": "CUSTOM", **headers}, body)
    (parsed,) = EslParser().feed(event_plain(event))
    decoded = parsed.event()
    assert decoded is not None and decoded.body == body
    assert decoded.headers["Event-Name"] == event.headers["Event-Name"]


def test_commands_parse_on_the_server_side() -> None:
    stream = (
        command("auth ClueCon")
        + command("api uuid_kill abc")
        + command("sendmsg abc", {"call-command": "execute", "execute-app-name": "playback"}, b"body")
    )
    commands = EslCommandParser().feed(stream)
    assert [c.line for c in commands] == ["auth ClueCon", "api uuid_kill abc", "sendmsg abc"]
    assert commands[1].verb == "api" and commands[1].argument == "uuid_kill abc"
    assert commands[2].headers["call-command"] == "execute" and commands[2].body == b"body"


def test_line_breaks_are_refused_so_nothing_can_inject_a_command() -> None:
    with pytest.raises(ValueError):
        command("api uuid_transfer abc 1002\n\napi shutdown")
    with pytest.raises(ValueError):
        message({"Reply-Text": "+OK\nContent-Type: x"})


@pytest.mark.parametrize(
    "garbage",
    [
        b"no colon here\n\n",
        b"Content-Length: many\n\n",
        b"Content-Length: -5\n\n",
        b"X: " + b"y" * 70000,
        b"Content-Length: " + HUGE + b"\n\n",
        b"Content-Length: 1_0\n\n",
    ],
)
def test_garbage_raises_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(EslProtocolError):
        EslParser().feed(garbage)


def test_event_json_must_be_an_object() -> None:
    (msg,) = EslParser().feed(message({"Content-Type": "text/event-json"}, json.dumps([1]).encode()))
    with pytest.raises(EslProtocolError):
        msg.event()


# -- the fuzz: any input either parses or raises EslProtocolError -------------------------------------------


@FUZZ
@given(STREAMS)
@example(b"Content-Length: " + HUGE + b"\n\n")
def test_fuzzed_bytes_parse_or_raise_the_protocol_error(data: bytes) -> None:
    try:
        messages = EslParser().feed(data)
        commands = EslCommandParser().feed(data)
    except EslProtocolError as refused:
        assert str(refused)
    else:
        assert all(isinstance(m.headers, dict) for m in messages) and len(commands) == len(messages)


@FUZZ
@given(st.sampled_from(["text/event-json", "text/event-plain"]), STREAMS)
@example("text/event-json", b'{"Unique-ID":"u","n":' + HUGE + b"}")  # json.loads: int()'s ValueError
@example("text/event-plain", b"Content-Length: " + HUGE + b"\n\n")
def test_fuzzed_event_bodies_parse_or_raise_the_protocol_error(content_type: str, body: bytes) -> None:
    (framed,) = EslParser().feed(message({"Content-Type": content_type}, body))
    try:
        event = framed.event()
    except EslProtocolError as refused:
        assert str(refused)
    else:
        assert event is not None and isinstance(event.headers, dict)
        event.json_body()  # None or a document: never raises
