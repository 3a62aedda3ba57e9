"""FreeSWITCH's mod_curl `curl` API command, emulated for the simulator, making a real (blocking) HTTP request.

What is emulated, as `mod_curl.c` and `switch_utils.c` of FreeSWITCH do it:
- the command line is split on blanks by `switch_separate_string`: runs of blanks separate, single quotes
  group, a backslash escapes `'`, `"` and `\\` and turns `\\n \\r \\t \\s` into their characters; in 1.10
  at most 10 tokens are kept (the last one takes the rest of the line), the current master refuses more
  than 30;
- options `headers`, `json`, `get|head`, `post|put|patch|delete [data]`, `content-type <mime>`,
  `connect-timeout <s>`, `timeout <s>`, `append_headers <h>`, `insecure|secure`, `proxy <url>`; anything
  else is ignored;
- the request data is URL-decoded by `switch_url_decode` (`%XX` only: `+` stays `+`);
- the response body is cut off at `max_bytes` (64000 by default): libcurl hands it over in pieces of at
  most 16 KiB and mod_curl stops at the piece that would overflow, so the caller gets what came before it;
- `json` output is cJSON's compact form: `{"status_code":"200","body":…,"version":…,"phrase":…,
  "headers":[{"key":…,"value":…}]}`; status_code is a string ("0" when no response came), "body" is left out
  when the body is empty, and master adds `"exit_code"` (libcurl's CURLcode) first.
Not emulated: proxies, client certificates, HTTP/2, and libcurl's exact redirect rules (urllib's are used).
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.client import RemoteDisconnected
from typing import Any, Literal

Flavour = Literal["1.10", "master"]

DEFAULT_MAX_BYTES = 64000
CURL_WRITE_PIECE = 16384  # CURL_MAX_WRITE_SIZE
CONNECT_TIMEOUT_S = 300.0  # libcurl's default; there is no default total timeout
USER_AGENT = "freeswitch-curl/1.0"
SYNTAX = (
    "curl url [headers|json|content-type <mime-type>|connect-timeout <seconds>|timeout <seconds>|"
    "append_headers <header_name:header_value>[|append_headers <header_name:header_value>]|insecure|secure|"
    "[proxy <http://proxy:port>]] [get|head|post|delete|put [data]]"
)
MAX_APPEND_HEADERS = 10

# libcurl's CURLcode values for the failures a request can end with.
CURLE_OK = 0
CURLE_UNSUPPORTED_PROTOCOL = 1
CURLE_URL_MALFORMAT = 3
CURLE_COULDNT_RESOLVE_HOST = 6
CURLE_COULDNT_CONNECT = 7
CURLE_WRITE_ERROR = 23
CURLE_OPERATION_TIMEDOUT = 28
CURLE_SSL_CONNECT_ERROR = 35
CURLE_GOT_NOTHING = 52
CURLE_RECV_ERROR = 56

_UNESCAPED = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


def _cleanup_token(token: str, delim: str | None) -> str:
    """Strip quotes, resolve escapes and trim blanks in one token, as `cleanup_separated_string` does."""
    out: list[str] = []
    end = 0  # length of `out` worth keeping: trailing blanks outside quotes are dropped
    inside_quotes = False
    i = len(token) - len(token.lstrip(" "))
    while i < len(token):
        ch = token[i]
        if ch == "\\" and i + 1 < len(token):
            nxt = token[i + 1]
            if nxt in ("'", '"', "\\") or nxt == delim or nxt in _UNESCAPED:
                out.append(_UNESCAPED.get(nxt, nxt) if nxt not in ("'", '"', "\\") and nxt != delim else nxt)
                end = len(out)
                i += 2
                continue
        if ch == "'" and (inside_quotes or "'" in token[i + 1 :]):
            inside_quotes = not inside_quotes
            if inside_quotes:
                end = len(out)
        else:
            out.append(ch)
            if ch != " " or inside_quotes:
                end = len(out)
        i += 1
    return "".join(out[:end])


def separate_string(line: str, limit: int) -> list[str]:
    """`switch_separate_string(line, ' ', argv, limit)`, including its `^^<c>` custom delimiter prefix. As in
    C, the quote state carries over from one token to the next, and the last token kept takes the rest."""
    delim = " "
    if line.startswith("^^") and len(line) > 3:
        delim, line = line[2], line[3:]
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(line)
    inside_quotes = False
    if delim == " ":
        while i < n and len(starts) < limit:
            starts.append(i)
            while i < n and line[i] == " ":
                i += 1
            while i < n:
                if line[i] == "\\":
                    i += 1
                elif line[i] == "'":
                    inside_quotes = not inside_quotes
                elif line[i] == " " and not inside_quotes:
                    break
                i += 1
            ends.append(i)
            while i < n and line[i] == " ":
                i += 1
    else:
        while i < n and len(starts) < limit:
            starts.append(i)
            while i < n:
                if line[i] == "\\":
                    i += 1
                elif line[i] == "'" and (inside_quotes or "'" in line[i + 1 :]):
                    inside_quotes = not inside_quotes
                elif line[i] == delim and not inside_quotes:
                    break
                i += 1
            ends.append(i)
            i += 1
    if starts and len(starts) == limit:
        ends[-1] = n  # the array is full: the last token was never cut off
    return [_cleanup_token(line[a:b], None if delim == " " else delim) for a, b in zip(starts, ends, strict=True)]


def url_decode(data: bytes) -> bytes:
    """`switch_url_decode`: `%XX` becomes the byte (one hex digit is read as well); nothing else changes."""
    if b"%" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x25 and len(data) - i > 2:
            digits = data[i + 1 : i + 3]
            hex_part = digits[:1] if len(digits) < 2 or not _is_hex(digits[1]) else digits
            if _is_hex(digits[0]):
                out.append(int(hex_part, 16))
                i += 3
                continue
        out.append(data[i])
        i += 1
    return bytes(out)


def _is_hex(value: int) -> bool:
    return chr(value) in "0123456789abcdefABCDEF"


def cjson_string(raw: bytes) -> bytes:
    """A string as cJSON prints it: quotes, backslashes and control characters escaped, other bytes as is."""
    out = bytearray(b'"')
    for b in raw:
        if b == 0x22:
            out += b'\\"'
        elif b == 0x5C:
            out += b"\\\\"
        elif b < 0x20:
            out += {8: b"\\b", 12: b"\\f", 10: b"\\n", 13: b"\\r", 9: b"\\t"}.get(b, b"\\u%04x" % b)
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


@dataclass
class CurlCommand:
    """One parsed `curl` command line."""

    url: str
    method: str = "get"
    data: bytes = b""
    content_type: str | None = None
    json: bool = False
    headers: bool = False
    connect_timeout: int = 0
    timeout: int = 0
    append_headers: list[str] = field(default_factory=list)
    insecure: bool = True


@dataclass
class CurlExchange:
    """One request the emulated module made, as the simulator reports it."""

    method: str
    url: str
    request_body: bytes
    content_type: str | None
    request_headers: dict[str, str]  # the ones `append_headers` added
    status: int
    response_body: bytes | None
    exit_code: int
    seconds: float


@dataclass
class _Response:
    status: int = 0
    body: bytes = b""
    header_lines: list[str] = field(default_factory=list)
    exit_code: int = CURLE_OK


class UsageError(Exception):
    pass


class ModCurl:
    """`freeswitch.API():execute("curl", arg)` for the simulator. `flavour` picks the 1.10 release
    behaviour (10 arguments, no exit_code) or the current master's (30 arguments, exit_code)."""

    def __init__(
        self,
        flavour: Flavour = "1.10",
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_exchange: Callable[[CurlExchange], None] | None = None,
    ) -> None:
        self.flavour = flavour
        self.max_bytes = max_bytes
        self.on_exchange = on_exchange
        self.exchanges: list[CurlExchange] = []

    def parse(self, arg: str) -> CurlCommand:
        limit = 10 if self.flavour == "1.10" else 31
        argv = separate_string(arg, limit)
        if not argv:
            raise UsageError("no url")
        if self.flavour == "master" and len(argv) > 30:
            raise UsageError("Max args exceeded: 30")
        command = CurlCommand(url=argv[0])
        i = 1
        while i < len(argv):
            word = argv[i].lower()
            has_next = i + 1 < len(argv)
            if word == "headers":
                command.headers = True
            elif word == "json":
                command.json = True
            elif word in ("get", "head"):
                command.method = word
            elif word in ("post", "patch", "put", "delete"):
                command.method = word
                command.data = url_decode(argv[i + 1].encode("utf-8", "surrogateescape")) if has_next else b""
                i += 1
            elif word == "content-type":
                if has_next:
                    command.content_type = argv[i + 1]
                i += 1
            elif word in ("connect-timeout", "timeout"):
                if has_next:
                    seconds = _atoi(argv[i + 1])
                    if seconds > 0:
                        setattr(command, word.replace("-", "_"), seconds)
                i += 1
            elif word == "append_headers":
                if has_next and len(command.append_headers) < MAX_APPEND_HEADERS:
                    command.append_headers.append(argv[i + 1])
                i += 1
            elif word in ("insecure", "secure"):
                command.insecure = word == "insecure"
            elif word == "proxy":
                i += 1
            i += 1
        return command

    def api(self, arg: str | None) -> bytes:
        """What the API command writes to its stream (the Lua string `execute` returns)."""
        if not arg:
            return f"-ERR\n{SYNTAX}\n".encode()
        try:
            command = self.parse(arg)
        except UsageError:
            return b""  # master logs "Max args exceeded" and writes nothing
        started = time.perf_counter()
        response = self._perform(command)
        body = response.body.split(b"\0", 1)[0]  # mod_curl keeps the body as a C string
        has_body = bool(body) and body != b" "
        exchange = CurlExchange(
            method=command.method.upper(),
            url=command.url,
            request_body=command.data,
            content_type=command.content_type,
            request_headers=dict(_header_pair(h) for h in command.append_headers if ":" in h),
            status=response.status,
            response_body=body if has_body else None,
            exit_code=response.exit_code,
            seconds=time.perf_counter() - started,
        )
        self.exchanges.append(exchange)
        if self.on_exchange is not None:
            self.on_exchange(exchange)
        if command.json:
            return self._json_output(response, body if has_body else None)
        out = b""
        if command.headers:
            out += b"".join(line.encode("latin-1") + b"\r\n\n" for line in response.header_lines) + b"\n"
        return out + (body if has_body else b"")

    def _json_output(self, response: _Response, body: bytes | None) -> bytes:
        parts: list[bytes] = []
        if self.flavour == "master":
            parts.append(b'"exit_code":' + cjson_string(str(response.exit_code).encode()))
        parts.append(b'"status_code":' + cjson_string(str(response.status).encode()))
        if body is not None:
            parts.append(b'"body":' + cjson_string(body))
        headers: list[bytes] = []
        for line in response.header_lines:
            if not line:
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                headers.append(
                    b'{"key":'
                    + cjson_string(key.encode("latin-1"))
                    + b',"value":'
                    + cjson_string(value.lstrip(" ").encode("latin-1"))
                    + b"}"
                )
            elif line.startswith("HTTP"):
                fields = separate_string(line, 3)
                if len(fields) > 2:
                    parts.append(b'"version":' + cjson_string(fields[0].encode("latin-1")))
                    parts.append(b'"phrase":' + cjson_string(fields[2].encode("latin-1")))
        parts.append(b'"headers":[' + b",".join(headers) + b"]")
        return b"{" + b",".join(parts) + b"}"

    def _perform(self, command: CurlCommand) -> _Response:
        if not command.url:
            return _Response(exit_code=CURLE_URL_MALFORMAT)
        scheme = command.url.split("://", 1)[0].lower() if "://" in command.url else "http"
        url = command.url if "://" in command.url else "http://" + command.url  # libcurl guesses http
        if scheme not in ("http", "https"):
            return _Response(exit_code=CURLE_UNSUPPORTED_PROTOCOL)
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        headers.update(_header_pair(h) for h in command.append_headers if ":" in h)
        data: bytes | None = None
        method = command.method.upper()
        if method in ("POST", "PATCH", "DELETE", "PUT"):
            data = command.data
            headers["Content-Type"] = command.content_type or "application/x-www-form-urlencoded"
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
        except ValueError:
            return _Response(exit_code=CURLE_URL_MALFORMAT)
        deadline = time.monotonic() + command.timeout if command.timeout else None
        connect_limit = float(command.connect_timeout or CONNECT_TIMEOUT_S)
        if deadline is not None:
            connect_limit = min(connect_limit, float(command.timeout))
        context = ssl._create_unverified_context() if command.insecure else ssl.create_default_context()
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        try:
            raw = opener.open(request, timeout=connect_limit)
        except urllib.error.HTTPError as exc:  # 4xx/5xx still carry a body, as libcurl reports it
            raw = exc.fp
            if raw is None:
                return _Response(status=exc.code, header_lines=_header_lines(exc.code, exc.reason, 11, exc.headers))
            return self._read(raw, exc.code, str(exc.reason), exc.headers, deadline)
        except urllib.error.URLError as exc:
            return _Response(exit_code=_exit_code_for(exc.reason))
        except TimeoutError:
            return _Response(exit_code=CURLE_OPERATION_TIMEDOUT)
        except RemoteDisconnected:
            return _Response(exit_code=CURLE_GOT_NOTHING)
        except OSError as exc:
            return _Response(exit_code=_exit_code_for(exc))
        with raw:
            return self._read(raw, raw.status, raw.reason, raw.headers, deadline)

    def _read(self, raw: Any, status: int, reason: str, headers: Message | None, deadline: float | None) -> _Response:
        version = getattr(raw, "version", 11)
        response = _Response(status=status, header_lines=_header_lines(status, reason, version, headers))
        body = bytearray()
        try:
            while True:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        response.exit_code = CURLE_OPERATION_TIMEDOUT
                        break
                    _set_read_timeout(raw, remaining)
                piece = raw.read1(CURL_WRITE_PIECE) if hasattr(raw, "read1") else raw.read(CURL_WRITE_PIECE)
                if not piece:
                    break
                if len(body) + len(piece) > self.max_bytes:
                    response.exit_code = CURLE_WRITE_ERROR  # "Oversized file detected"
                    break
                body += piece
        except TimeoutError:
            response.exit_code = CURLE_OPERATION_TIMEDOUT
        except OSError:
            response.exit_code = CURLE_RECV_ERROR
        response.body = bytes(body)
        return response


def _header_pair(header: str) -> tuple[str, str]:
    key, value = header.split(":", 1)
    return key.strip(), value.strip()


def _atoi(text: str) -> int:
    digits = ""
    for i, ch in enumerate(text.strip()):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def _header_lines(status: int, reason: str, version: int, headers: Message | None) -> list[str]:
    lines = [f"HTTP/{'1.1' if version == 11 else '1.0'} {status} {reason}".rstrip()]
    if headers is not None:
        lines += [f"{key}: {value}" for key, value in headers.items()]
    return lines


def _set_read_timeout(raw: Any, seconds: float) -> None:
    sock = getattr(getattr(raw, "fp", None), "raw", None)
    sock = getattr(sock, "_sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(seconds, 0.001))


def _exit_code_for(reason: object) -> int:
    if isinstance(reason, socket.gaierror):
        return CURLE_COULDNT_RESOLVE_HOST
    if isinstance(reason, TimeoutError):
        return CURLE_OPERATION_TIMEDOUT
    if isinstance(reason, ssl.SSLError):
        return CURLE_SSL_CONNECT_ERROR
    if isinstance(reason, ConnectionRefusedError | ConnectionResetError | OSError):
        return CURLE_COULDNT_CONNECT
    return CURLE_COULDNT_CONNECT
