"""The FreeSWITCH event socket (mod_event_socket) wire format, sans-I/O, for both ends.

A message is a block of `Name: value` lines ended by a blank line, then `Content-Length` bytes of body if
that header is present. Clients send commands the same way, the first line being the command itself
(`auth ClueCon`, `api uuid_kill …`, `event json CUSTOM …`). Events arrive as `text/event-json` (a JSON
object of headers, the event body under `_body`) or `text/event-plain` (URL-encoded headers, then a body).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

MAX_HEADER_BLOCK = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class EslProtocolError(ValueError):
    """The peer sent something that is not ESL: the only error the parsers raise, whatever the input. Bad
    framing means the connection can't be trusted any more; a bad event body spoils only that event."""


@dataclass(frozen=True, slots=True)
class EslEvent:
    headers: dict[str, str]
    body: str = ""

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    @property
    def subclass(self) -> str:
        return self.headers.get("Event-Subclass", "")

    @property
    def unique_id(self) -> str:
        return self.headers.get("Unique-ID", "")

    def json_body(self) -> Any:
        """The body as JSON (mod_audio_stream's events carry JSON), or None when it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # ValueError: bad JSON, or an integer of over 4,300 digits
            return None


@dataclass(frozen=True, slots=True)
class EslMessage:
    """One message from FreeSWITCH to a client."""

    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        """`command/reply`'s `Reply-Text`, or an `api/response`'s body: `+OK …` or `-ERR …`."""
        if self.content_type == "api/response":
            return self.body.decode("utf-8", "replace").strip()
        return self.headers.get("Reply-Text", "")

    @property
    def ok(self) -> bool:
        return not self.reply_text.startswith("-ERR")

    def event(self) -> EslEvent | None:
        if self.content_type == "text/event-json":
            return parse_event_json(self.body)
        if self.content_type == "text/event-plain":
            return parse_event_plain(self.body)
        return None


@dataclass(frozen=True, slots=True)
class EslCommand:
    """One command from a client to FreeSWITCH."""

    line: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def verb(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def argument(self) -> str:
        parts = self.line.split(" ", 1)
        return parts[1] if len(parts) > 1 else ""


def parse_event_json(body: bytes) -> EslEvent:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON or UTF-8, or an integer of over 4,300 digits
        raise EslProtocolError(f"event-json body is not JSON: {str(exc)[:80]}") from None
    if not isinstance(document, dict):
        raise EslProtocolError("event-json body is not an object")
    event_body = document.pop("_body", "")
    return EslEvent({str(k): str(v) for k, v in document.items()}, str(event_body))


def parse_event_plain(body: bytes) -> EslEvent:
    head, _, rest = body.partition(b"\n\n")
    headers = _header_lines(head.decode("utf-8", "replace").split("\n"), decode=True)
    length = _content_length(headers.get("Content-Length", "0") or "0")
    return EslEvent(headers, rest[:length].decode("utf-8", "replace") if length else "")


def _content_length(value: str) -> int:
    """ASCII digits only, at most MAX_BODY: `int()` would take `1_0`, `+5` or Arabic digits, and raise
    ValueError (not ours) on 4,300 of them."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_BODY)) or int(text) > MAX_BODY:
        raise EslProtocolError(f"bad Content-Length: {value[:80]!r}")
    return int(text)


def _header_lines(lines: list[str], decode: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise EslProtocolError(f"not a header line: {line[:80]!r}")
        value = value.strip()
        headers[name.strip()] = unquote(value) if decode else value
    return headers


class _BlockReader:
    """Splits a byte stream into (header lines, body) blocks."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: tuple[list[str], int] | None = None

    def feed(self, data: bytes) -> list[tuple[list[str], bytes]]:
        self._buffer += data
        blocks: list[tuple[list[str], bytes]] = []
        while True:
            if self._pending is None:
                while self._buffer.startswith(b"\n"):  # stray blank lines between messages
                    del self._buffer[0]
                end = self._buffer.find(b"\n\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER_BLOCK:
                        raise EslProtocolError("header block too long")
                    return blocks
                lines = self._buffer[:end].decode("utf-8", "replace").replace("\r", "").split("\n")
                del self._buffer[: end + 2]
                length = 0
                for line in lines:
                    if line.lower().startswith("content-length:"):
                        length = _content_length(line.split(":", 1)[1])
                self._pending = (lines, length)
            lines, length = self._pending
            if len(self._buffer) < length:
                return blocks
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            blocks.append((lines, body))


class EslParser:
    """Client side: feed bytes from FreeSWITCH, get messages."""

    def __init__(self) -> None:
        self._reader = _BlockReader()

    def feed(self, data: bytes) -> list[EslMessage]:
        return [EslMessage(_header_lines(lines), body) for lines, body in self._reader.feed(data)]


class EslCommandParser:
    """Server side (the simulator): feed bytes from a client, get commands."""

    def __init__(self) -> None:
        self._reader = _BlockReader()

    def feed(self, data: bytes) -> list[EslCommand]:
        commands = []
        for lines, body in self._reader.feed(data):
            commands.append(EslCommand(lines[0].strip(), _header_lines(lines[1:]), body))
        return commands


# -- serializers ----------------------------------------------------------------------------------------


def _inert(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError("ESL lines can't contain line breaks")
    return text


def command(line: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """A client command. Line breaks are refused: they would let a value inject a second command."""
    out = [_inert(line)]
    for name, value in (headers or {}).items():
        out.append(f"{_inert(name)}: {_inert(value)}")
    if body:
        out.append(f"Content-Length: {len(body)}")
    return ("\n".join(out) + "\n\n").encode() + body


def message(headers: dict[str, str], body: bytes = b"") -> bytes:
    """A server message (the simulator's side)."""
    lines = [f"{_inert(k)}: {_inert(v)}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\n".join(lines) + "\n\n").encode() + body


def event_json(event: EslEvent) -> bytes:
    body = json.dumps({**event.headers, **({"_body": event.body} if event.body else {})}).encode()
    return message({"Content-Type": "text/event-json"}, body)


def event_plain(event: EslEvent) -> bytes:
    inner = [f"{k}: {quote(v, safe='')}" for k, v in event.headers.items()]
    body_bytes = event.body.encode()
    if body_bytes:
        inner.append(f"Content-Length: {len(body_bytes)}")
    payload = ("\n".join(inner) + "\n\n").encode() + body_bytes
    return message({"Content-Type": "text/event-plain"}, payload)
