"""The `mod_audio_stream` wire protocol, sans-I/O: feed it what the socket received, get typed events back;
ask it for the text of the messages to send. Both ends use it (the bridge and the FreeSWITCH simulator).

What FreeSWITCH sends: one optional text frame of metadata (JSON the dialplan wrote), then binary frames of
raw L16 (signed 16-bit little-endian) audio, any whole number of samples each. The call is named by the URL
path `/stream/{domain_uuid}/{call_uuid}`, as the module never says it in band.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

SUPPORTED_RATES = (8000, 16000, 24000, 32000, 48000)
RAW_RATES = (8000, 16000, 24000, 32000, 48000, 64000)  # what a `streamAudio` raw chunk may declare
MAX_METADATA_BYTES = 8192  # the module never sends more
_STOP_AUDIO = '{"type":"stopAudio"}'
EPOCH_KEY = "voiceai_epoch"


class ProtocolError(ValueError):
    """A stream that can't be served at all (bad path); `reason` goes into the WebSocket close frame."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StreamTarget:
    domain_uuid: UUID
    call_uuid: UUID
    sample_rate: int | None = None  # from `?sample_rate=` when the dialplan put it in the URL
    test_call: str | None = None  # `?test_call=`: the console's token for a test call from the browser


def parse_path(path: str) -> StreamTarget:
    """`/stream/{domain_uuid}/{call_uuid}[?sample_rate=16000][&test_call=…]` → the call it names. A request
    target is a path and a query, split by hand: `urlsplit` would read `//…` as a host and raise on `//[`."""
    route, _, query_text = path.partition("#")[0].partition("?")
    segments = [s for s in route.split("/") if s]
    if len(segments) != 3 or segments[0] != "stream":
        raise ProtocolError("expected the path /stream/{domain_uuid}/{call_uuid}")
    try:
        domain, call = UUID(segments[1]), UUID(segments[2])
    except ValueError:
        raise ProtocolError("domain_uuid and call_uuid in the path must be UUIDs") from None
    rate: int | None = None
    query = parse_qs(query_text)
    raw_rates = query.get("sample_rate") or query.get("rate")
    if raw_rates:
        raw_rate = raw_rates[0]
        rate = _rate(raw_rate)
        if rate is None:
            raise ProtocolError(f"unsupported sample_rate {raw_rate[:16]!r} in the URL")
    test_calls = query.get("test_call")
    return StreamTarget(domain, call, rate, test_calls[0] if test_calls else None)


def _rate(value: Any) -> int | None:
    """A supported rate from JSON or a query string, else None (never raises: `Infinity` overflows `int`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        value = text[:-1] + "000" if text.endswith("k") else text
    try:
        rate = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return rate if rate in SUPPORTED_RATES else None


@dataclass(frozen=True, slots=True)
class StreamMetadata:
    """Who is calling whom, and the audio rate. Unknown keys are kept in `extra` (never trusted)."""

    sample_rate: int
    caller_id_number: str = ""
    caller_id_name: str = ""
    destination_number: str = ""
    extra: dict[str, str] = field(default_factory=dict)


_ALIASES = {
    "caller_id_number": ("caller_id_number", "callerIdNumber", "caller_id", "from"),
    "caller_id_name": ("caller_id_name", "callerIdName"),
    "destination_number": ("destination_number", "destinationNumber", "destination", "to"),
}


def _text(value: Any, limit: int = 128) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return "".join(ch for ch in str(value) if ch.isprintable())[:limit]
    return ""


def parse_metadata(raw: str | bytes, default_rate: int) -> tuple[StreamMetadata, list[str]]:
    """The metadata frame; never raises: what is missing or malformed falls back to defaults and is listed
    in the returned problems, for the log."""
    problems: list[str] = []
    if len(raw) > MAX_METADATA_BYTES:
        return StreamMetadata(default_rate), [f"metadata of {len(raw)} bytes is longer than {MAX_METADATA_BYTES}"]
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError: bad JSON or UTF-8, or an integer of over 4,300 digits
        return StreamMetadata(default_rate), ["metadata is not JSON"]
    if not isinstance(document, dict):
        return StreamMetadata(default_rate), ["metadata is not a JSON object"]
    values: dict[str, str] = {}
    for key, names in _ALIASES.items():
        values[key] = next((_text(document[n]) for n in names if n in document), "")
    rate = default_rate
    raw_rate = document.get("sample_rate", document.get("sampleRate"))
    if raw_rate is not None:
        parsed = _rate(raw_rate)
        if parsed is None:
            problems.append(f"unsupported sample_rate {str(raw_rate)[:16]!r}: using {default_rate}")
        else:
            rate = parsed
    known = {n for names in _ALIASES.values() for n in names} | {"sample_rate", "sampleRate"}
    extra = {str(k)[:64]: _text(v) for k, v in list(document.items())[:32] if k not in known}
    return StreamMetadata(rate, extra=extra, **values), problems


class DropReason(StrEnum):
    EMPTY = "empty"
    ODD_LENGTH = "odd_length"
    TOO_LARGE = "too_large"
    UNEXPECTED_TEXT = "unexpected_text"
    FLOOD = "flood"


@dataclass(frozen=True, slots=True)
class MetadataReceived:
    metadata: StreamMetadata
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AudioFrame:
    pcm: bytes


@dataclass(frozen=True, slots=True)
class FrameDropped:
    reason: DropReason
    size: int


StreamEvent = MetadataReceived | AudioFrame | FrameDropped


class AudioStreamProtocol:
    """The inbound half of one stream: first the metadata, then audio frames, each checked."""

    def __init__(self, target: StreamTarget, default_rate: int, max_frame_bytes: int) -> None:
        self.target = target
        self._default_rate = target.sample_rate or default_rate
        self._max_frame = max_frame_bytes
        self.metadata: StreamMetadata | None = None

    def receive(self, message: str | bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self.metadata is None:
            if isinstance(message, str):
                self.metadata, problems = parse_metadata(message, self._default_rate)
                return [MetadataReceived(self.metadata, tuple(problems))]
            events.append(self.no_metadata())
        if isinstance(message, str):
            events.append(FrameDropped(DropReason.UNEXPECTED_TEXT, len(message)))
        elif not message:
            events.append(FrameDropped(DropReason.EMPTY, 0))
        elif len(message) & 1:
            events.append(FrameDropped(DropReason.ODD_LENGTH, len(message)))
        elif len(message) > self._max_frame:
            events.append(FrameDropped(DropReason.TOO_LARGE, len(message)))
        else:
            events.append(AudioFrame(message))
        return events

    def no_metadata(self) -> MetadataReceived:
        """The stream sent audio (or nothing) before any metadata: defaults from the URL."""
        self.metadata = StreamMetadata(self._default_rate)
        return MetadataReceived(self.metadata, ("no metadata frame: defaults from the URL",))


class RealTimeBudget:
    """Caps how far a stream's audio may run ahead of the wall clock. FreeSWITCH sends at real time; a
    sender that floods faster would make us queue its audio without bound."""

    def __init__(self, sample_rate: int, allowance_s: float, started_at: float) -> None:
        self._bytes_per_s = 2 * sample_rate
        self._allowance = allowance_s
        self._start = started_at
        self._received_s = 0.0

    def admit(self, size: int, now: float) -> bool:
        seconds = size / self._bytes_per_s
        if self._received_s + seconds > (now - self._start) + self._allowance:
            return False
        self._received_s += seconds
        return True


# -- what the server sends ------------------------------------------------------------------------------


def stream_audio(pcm: bytes, sample_rate: int, epoch: int = 0) -> str:
    """A `streamAudio` message with raw L16 audio, tagged with the playback's epoch (`EPOCH_KEY`: the
    community build copies extra keys of `data` into its `play` event, so a late event of audio cut by a
    barge-in can be told apart). Built by hand: base64 is JSON-safe, and this runs for every chunk of every
    call."""
    if sample_rate not in RAW_RATES:
        raise ValueError(f"raw streamAudio supports {RAW_RATES}, not {sample_rate}")
    payload = base64.b64encode(pcm).decode("ascii")
    return (
        '{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":'
        + str(sample_rate)
        + ',"'
        + EPOCH_KEY
        + '":'
        + str(epoch)
        + ',"audioData":"'
        + payload
        + '"}}'
    )


def stop_audio() -> str:
    """Barge-in for playback builds: empty the module's playback buffer."""
    return _STOP_AUDIO


def call_claimed(call_uuid: str) -> str:
    """The bridge's first text on a stream it serves (token, domain and call checked): FreeSWITCH fires it as
    `mod_audio_stream::json`, and the Lua script that started the stream stops waiting to fall back to turns."""
    return json.dumps({"type": "voiceai.claimed", "call_uuid": call_uuid}, separators=(",", ":"))


def call_action(action: dict[str, str]) -> str:
    """What the bridge asks of the dialplan when it can't reach ESL: the module fires it as the event
    `mod_audio_stream::json`, which an event hook (or the dialplan) acts on."""
    return json.dumps({**action, "type": "voiceai.action"}, separators=(",", ":"))


def transcript(turn: int, caller: str, secretary: str, action: dict[str, str]) -> str:
    """A turn of a test call, for the console's page (a FreeSWITCH stream never gets one)."""
    document = {"type": "voiceai.transcript", "turn": turn, "caller": caller, "secretary": secretary, "action": action}
    return json.dumps(document, separators=(",", ":"))


# -- what the module receives (the simulator's side) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamAudio:
    pcm: bytes
    sample_rate: int
    data: dict[str, Any]  # the `data` object without `audioData` (what the community build puts in its event)


@dataclass(frozen=True, slots=True)
class StopAudio:
    pass


@dataclass(frozen=True, slots=True)
class OtherText:
    """Any other text: the module fires `mod_audio_stream::json` with it as the body."""

    text: str


ServerMessage = StreamAudio | StopAudio | OtherText


def parse_server_message(text: str) -> ServerMessage:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return OtherText(text)
    if not isinstance(document, dict):
        return OtherText(text)
    kind = document.get("type")
    if kind == "stopAudio":
        return StopAudio()
    data = document.get("data")
    if kind != "streamAudio" or not isinstance(data, dict) or data.get("audioDataType") != "raw":
        return OtherText(text)
    rate = data.get("sampleRate")
    audio = data.get("audioData")
    if rate not in RAW_RATES or not isinstance(audio, str):
        return OtherText(text)
    try:
        pcm = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return OtherText(text)
    return StreamAudio(pcm, int(rate), {k: v for k, v in data.items() if k != "audioData"})
