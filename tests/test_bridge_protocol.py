"""The mod_audio_stream codec, sans-I/O: paths, metadata, frame checks, message builders (property-based), and a
bounded fuzz whose only allowed failure is the codec's own `ProtocolError` (every crash it found is an @example)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.protocol import (
    EPOCH_KEY,
    SUPPORTED_RATES,
    AudioFrame,
    AudioStreamProtocol,
    DropReason,
    FrameDropped,
    MetadataReceived,
    OtherText,
    ProtocolError,
    RealTimeBudget,
    StopAudio,
    StreamAudio,
    StreamTarget,
    call_action,
    parse_metadata,
    parse_path,
    parse_server_message,
    stop_audio,
    stream_audio,
)

DOMAIN = uuid.UUID("d0000000-0001-4000-8000-000000000001")
CALL = uuid.UUID("0b7e6d1c-1111-4222-8333-444455556666")
HUGE = "7" * 4400  # Python's int() refuses more than 4,300 digits, with a ValueError of its own
# Fast and the same on every run (CI): a few hundred derandomized examples per test.
FUZZ = settings(max_examples=400, deadline=None, derandomize=True, database=None)
# Pieces that reach the parsers' corners, which random text rarely does: URL syntax, numbers int() can't take.
PATHS = st.lists(
    st.sampled_from(["/", "//", "[", "]", "?", "&", "=", "#", "%5B", ":", "@", "stream", "sample_rate", "rate",
                     "16k", str(DOMAIN), str(CALL), HUGE]) | st.text(max_size=4),
    max_size=12,
).map("".join)  # fmt: skip
JSON_VALUES = st.sampled_from(
    ["Infinity", "-Infinity", "NaN", "1e999", "-1e999", HUGE, f'"{HUGE}"', "16000", "16000.5", '"16k"', "true", "null",
     "[]", "{}", '"+1555"'],
)  # fmt: skip
METADATA = st.text(max_size=200) | st.lists(
    st.tuples(st.sampled_from(["sample_rate", "sampleRate", "caller_id_number", "from", "to", "tenant"]), JSON_VALUES),
    max_size=4,
).map(lambda pairs: "{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}")


def protocol(max_frame: int = 96000) -> AudioStreamProtocol:
    return AudioStreamProtocol(StreamTarget(DOMAIN, CALL), 8000, max_frame)


def test_path_names_domain_call_and_optional_rate() -> None:
    assert parse_path(f"/stream/{DOMAIN}/{CALL}") == StreamTarget(DOMAIN, CALL)
    assert parse_path(f"/stream/{DOMAIN}/{CALL}/?sample_rate=16k").sample_rate == 16000
    assert parse_path(f"/stream/{DOMAIN}/{CALL}?rate=8000").sample_rate == 8000


@pytest.mark.parametrize(
    "path",
    ["/", "/stream", f"/stream/{DOMAIN}", f"/other/{DOMAIN}/{CALL}", f"/stream/acme/{CALL}",
     f"/stream/{DOMAIN}/{CALL}/extra", f"/stream/{DOMAIN}/{CALL}?sample_rate=11025", f"//[/stream/{DOMAIN}/{CALL}",
     f"/stream/{DOMAIN}/{CALL}?sample_rate={HUGE}"],
)  # fmt: skip
def test_bad_paths_are_refused_with_a_reason(path: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_path(path)
    assert refused.value.reason


def test_metadata_fields_and_aliases() -> None:
    meta, problems = parse_metadata(
        '{"caller_id_number":"+15551234","callerIdName":"Jo","to":"5000","sample_rate":16000,"tenant":"x"}', 8000
    )
    assert (meta.caller_id_number, meta.caller_id_name, meta.destination_number) == ("+15551234", "Jo", "5000")
    assert meta.sample_rate == 16000 and meta.extra == {"tenant": "x"} and problems == []


@pytest.mark.parametrize(
    ("raw", "problem"),
    [("not json", "not JSON"), ("[1,2]", "not a JSON object"), ('{"sample_rate":44100}', "unsupported"),
     ("{" + " " * 9000 + "}", "longer than"), ('{"sample_rate":Infinity}', "unsupported"),
     ('{"sample_rate":1e999}', "unsupported"), ('{"sample_rate":' + HUGE + "}", "not JSON")],
)  # fmt: skip
def test_bad_metadata_falls_back_to_defaults_and_says_why(raw: str, problem: str) -> None:
    meta, problems = parse_metadata(raw, 8000)
    assert meta.sample_rate == 8000 and meta.caller_id_number == ""
    assert any(problem in p for p in problems)


def test_first_binary_frame_means_no_metadata_and_is_still_audio() -> None:
    events = protocol().receive(b"\x01\x00" * 160)
    assert isinstance(events[0], MetadataReceived) and events[0].problems
    assert events[1] == AudioFrame(b"\x01\x00" * 160)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(b"", DropReason.EMPTY), (b"\x00" * 321, DropReason.ODD_LENGTH), (b"\x00" * 1_000_000, DropReason.TOO_LARGE),
     ("mid-stream text", DropReason.UNEXPECTED_TEXT)],
)  # fmt: skip
def test_bad_frames_are_dropped_with_a_reason(frame: str | bytes, reason: DropReason) -> None:
    codec = protocol()
    codec.receive('{"sample_rate":8000}')
    (event,) = codec.receive(frame)
    assert isinstance(event, FrameDropped) and event.reason is reason


@given(st.lists(st.one_of(st.binary(max_size=2000), st.text(max_size=200)), max_size=30))
def test_any_sequence_of_messages_yields_events_and_never_raises(messages: list[str | bytes]) -> None:
    codec = protocol(max_frame=1000)
    for message in messages:
        for event in codec.receive(message):
            if isinstance(event, AudioFrame):
                assert len(event.pcm) % 2 == 0 and 0 < len(event.pcm) <= 1000
    assert codec.metadata is not None or not messages


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20))  # fmt: skip
def test_metadata_of_any_json_never_raises(document: object) -> None:
    meta, _ = parse_metadata(json.dumps(document), 16000)
    assert meta.sample_rate in (8000, 16000, 24000, 32000, 48000)


@given(
    st.binary(max_size=4000).map(lambda b: b[: len(b) // 2 * 2]),
    st.sampled_from([8000, 16000, 24000, 48000]),
    st.integers(min_value=0, max_value=10**6),
)
def test_stream_audio_round_trips(pcm: bytes, rate: int, epoch: int) -> None:
    text = stream_audio(pcm, rate, epoch)
    document = json.loads(text)
    assert document["type"] == "streamAudio" and base64.b64decode(document["data"]["audioData"]) == pcm
    parsed = parse_server_message(text)
    assert isinstance(parsed, StreamAudio) and parsed.pcm == pcm and parsed.sample_rate == rate
    assert parsed.data == {"audioDataType": "raw", "sampleRate": rate, EPOCH_KEY: epoch}


@given(st.text(max_size=300))
def test_any_server_text_parses_to_a_message(text: str) -> None:
    assert isinstance(parse_server_message(text), StreamAudio | StopAudio | OtherText)


def test_stop_audio_and_call_action_messages() -> None:
    assert parse_server_message(stop_audio()) == StopAudio()
    action = call_action({"action": "transfer", "destination": "1002", "context": "acme.example.com"})
    assert " " not in action and json.loads(action)["type"] == "voiceai.action"
    assert isinstance(parse_server_message(action), OtherText)
    with pytest.raises(ValueError):
        stream_audio(b"\x00\x00", 11025)


def test_real_time_budget_admits_real_time_and_refuses_a_flood() -> None:
    budget = RealTimeBudget(8000, allowance_s=1.0, started_at=0.0)
    # 10 s at real time: every 20 ms frame admitted
    assert all(budget.admit(320, now=i * 0.02) for i in range(500))
    # then 2 s of audio at once: the first second fits the allowance, the rest is refused
    admitted = sum(budget.admit(320, now=10.0) for _ in range(100))
    assert 49 <= admitted <= 51


# -- the fuzz: any input either parses or raises ProtocolError -----------------------------------------------


@FUZZ
@given(PATHS)
@example("//[")  # urlsplit read `//…` as a host: "Invalid IPv6 URL"
@example("//%=][stream&?[=]")  # the same, through ipaddress: "does not appear to be an IPv4 or IPv6 address"
def test_fuzzed_paths_name_a_call_or_raise_protocol_error(path: str) -> None:
    try:
        target = parse_path(path)
    except ProtocolError as refused:
        assert refused.reason
    else:
        assert target.sample_rate in (None, *SUPPORTED_RATES)


@FUZZ
@given(st.lists(METADATA | st.binary(max_size=64), max_size=4))
@example(['{"sampleRate":-1e999}'])  # int(inf): OverflowError
@example(['{"sample_rate":Infinity}'])
@example(['{"caller_id_number":' + HUGE + "}"])  # json.loads: int()'s ValueError, not a JSONDecodeError
def test_fuzzed_streams_yield_events_and_never_raise(messages: list[str | bytes]) -> None:
    codec = protocol(max_frame=1000)
    events = [event for message in messages for event in codec.receive(message)]
    assert len(events) >= len(messages)
    assert codec.metadata is None or codec.metadata.sample_rate in SUPPORTED_RATES


@FUZZ
@given(METADATA)
@example('{"sample_rate":' + HUGE + "}")  # json.loads: int()'s ValueError, not a JSONDecodeError
def test_fuzzed_server_text_parses_to_a_message(text: str) -> None:
    assert isinstance(parse_server_message(text), StreamAudio | StopAudio | OtherText)
