"""The JSON codecs a FreeSWITCH Lua script may find, emulated in Python for the simulator as their sources
behave (read, not copied):

- `freeswitch.JSON()` of mod_lua 1.10.12 (`freeswitch_lua.cpp`, over cJSON 1.7.12 in `src/cJSON.c`):
  `decode` is `cJSON_Parse` (trailing garbage ignored, nesting limit 1000) turned into a Lua table: a bad
  document gives no value at all, a scalar document an empty table; numbers become Lua floats; `null`s are
  dropped (and in an array the items after one move up); an array inside an array is dropped; strings end at
  their first NUL. `encode` takes a table only: it is an array when the first key `next` returns converts to
  the number 1 (every further item is then appended, whatever its key), an object otherwise (keys as
  `lua_tostring` gives them; a key of another type is lost); functions and userdata are skipped; an empty
  table is `{}` (or `[]` after `encode_empty_table_as_object(false)`); numbers are printed with 15
  significant digits, 17 when 15 don't give the same double back, NaN and infinities as `null`; strings are
  copied as bytes with `"`, `\\` and control characters escaped. The output is cJSON's *formatted* form
  (tabs and newlines) unless `return_unformatted_json(true)` was called: the C++ object never initialises
  that flag, so a script must set it.
- FusionPBX's `resources.functions.lunajson` (`app/switch/resources/scripts/resources/functions/lunajson/`):
  `decode(text)` is strict (whitespace is `[ \\n\\r\\t]` only, anything after the value is an error), numbers
  become Lua floats, `null` becomes nil, and a document that is a lone `0` is refused (the decoder looks past
  the zero); `encode(value)` writes an array when `t[1] ~= nil` (then `t[1]`, `t[2]`, … up to the first nil),
  an object otherwise (a non-string key is an error), numbers with `%.17g`, control characters as `\\u00XX`,
  and refuses NaN, infinities, functions and a table that contains itself. Errors are raised as Lua errors.
  Not emulated: the extra arguments (`pos`, `nullv`, `arraylen`) and the decoder's surrogate state leaking
  from one failed call into the next.

Values cross from Lua as `LuaTable` descriptions (see `lua_sim`: strings as bytes, entries in `next` order);
what a decoder gives back is a `TableOut` (assignments in order, `None` assigning nil) or a scalar.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from freeswitch.mod_curl import cjson_string

CJSON_NESTING_LIMIT = 1000


class JsonError(Exception):
    """A Lua error raised by a codec (the script sees it as `error(message)`)."""


@dataclass(frozen=True)
class Opaque:
    """A Lua value JSON can't hold: a function, userdata or thread (`kind` is its Lua type name)."""

    kind: str


@dataclass(frozen=True)
class Loop:
    """A table met again inside itself."""


@dataclass(frozen=True)
class LuaKey:
    value: LuaScalar | Opaque
    text: bytes | None  # lua_tostring(key): numbers and strings only
    is_one: bool  # lua_isnumber(key) && lua_tonumber(key) == 1


@dataclass(frozen=True)
class LuaTable:
    entries: tuple[tuple[LuaKey, LuaValue], ...]

    def get(self, index: int) -> LuaValue:
        """`t[index]` (raw), None when absent."""
        for key, value in self.entries:
            if isinstance(key.value, int | float) and not isinstance(key.value, bool) and key.value == index:
                return value
        return None


LuaScalar = bytes | bool | int | float | None
LuaValue = LuaScalar | LuaTable | Loop | Opaque


@dataclass
class TableOut:
    """A Lua table to build: `t[key] = value` in order."""

    items: list[tuple[bytes | int, LuaOut]] = field(default_factory=list)


LuaOut = bytes | bool | float | TableOut | None


@contextmanager
def _deep_recursion() -> Iterator[None]:
    """Documents nested up to cJSON's limit recurse deeper than Python's default allows."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, 6 * CJSON_NESTING_LIMIT))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


# -- cJSON 1.7.12 ----------------------------------------------------------------------------------------


@dataclass
class _Item:
    kind: str  # "null", "false", "true", "number", "string", "array", "object"
    number: float = 0.0
    string: bytes = b""
    children: list[tuple[bytes | None, _Item]] = field(default_factory=list)


class _Failed(Exception):
    pass


_STRTOD = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_CHARS = frozenset(b"0123456789+-eE.")
_SIMPLE_ESCAPES = {ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9}


class _CJsonParser:
    """`cJSON_ParseWithOpts(value, NULL, false)` over a C string (`length` counts its NUL terminator)."""

    def __init__(self, text: bytes) -> None:
        self.content = text.split(b"\0", 1)[0] + b"\0"
        self.length = len(self.content)
        self.offset = 0
        self.depth = 0

    def parse(self) -> _Item | None:
        if self.length > 4 and self.content.startswith(b"\xef\xbb\xbf"):
            self.offset = 3
        self._skip_whitespace()
        try:
            return self._value()
        except _Failed:
            return None

    def _can_access(self, index: int) -> bool:
        return self.offset + index < self.length

    def _at(self, index: int = 0) -> int:
        return self.content[self.offset + index]

    def _skip_whitespace(self) -> None:
        while self._can_access(0) and self._at() <= 32:
            self.offset += 1
        if self.offset == self.length:
            self.offset -= 1

    def _value(self) -> _Item:
        for word, kind in ((b"null", "null"), (b"false", "false"), (b"true", "true")):
            if self.offset + len(word) <= self.length and self.content.startswith(word, self.offset):
                self.offset += len(word)
                return _Item(kind)
        if not self._can_access(0):
            raise _Failed
        first = self._at()
        if first == ord('"'):
            return _Item("string", string=self._string())
        if first == ord("-") or ord("0") <= first <= ord("9"):
            return self._number()
        if first == ord("["):
            return self._array()
        if first == ord("{"):
            return self._object()
        raise _Failed

    def _number(self) -> _Item:
        end = self.offset
        while end - self.offset < 63 and end < self.length and self.content[end] in _NUMBER_CHARS:
            end += 1
        match = _STRTOD.match(self.content, self.offset, end)
        if match is None:
            raise _Failed
        self.offset = match.end()
        return _Item("number", number=float(match.group()))

    def _string(self) -> bytes:
        if self._at() != ord('"'):
            raise _Failed
        start = self.offset + 1
        end = start
        while end < self.length and self.content[end] != ord('"'):
            if self.content[end] == ord("\\"):
                if end + 1 >= self.length:
                    raise _Failed
                end += 1
            end += 1
        if end >= self.length or self.content[end] != ord('"'):
            raise _Failed
        out = bytearray()
        i = start
        while i < end:
            byte = self.content[i]
            if byte != ord("\\"):
                out.append(byte)
                i += 1
                continue
            escape = self.content[i + 1]
            if escape in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[escape])
            elif escape in b'"\\/':
                out.append(escape)
            elif escape == ord("u"):
                i += self._utf16_literal(i, end, out)
                continue
            else:
                raise _Failed
            i += 2
        self.offset = end + 1
        return bytes(out)

    def _hex4(self, at: int) -> int:
        """`parse_hex4`: 0 for anything that is not four hex digits."""
        digits = self.content[at : at + 4]
        if len(digits) < 4 or any(chr(d) not in "0123456789abcdefABCDEF" for d in digits):
            return 0
        return int(digits, 16)

    def _utf16_literal(self, at: int, end: int, out: bytearray) -> int:
        if end - at < 6:
            raise _Failed
        first = self._hex4(at + 2)
        if 0xDC00 <= first <= 0xDFFF:
            raise _Failed
        if 0xD800 <= first <= 0xDBFF:
            second_at = at + 6
            if end - second_at < 6 or self.content[second_at : second_at + 2] != b"\\u":
                raise _Failed
            second = self._hex4(second_at + 2)
            if not 0xDC00 <= second <= 0xDFFF:
                raise _Failed
            code, length = 0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF)), 12
        else:
            code, length = first, 6
        out += chr(code).encode("utf-8", "surrogatepass")
        return length

    def _array(self) -> _Item:
        return self._container("array", ord("]"))

    def _object(self) -> _Item:
        return self._container("object", ord("}"))

    def _container(self, kind: str, closer: int) -> _Item:
        if self.depth >= CJSON_NESTING_LIMIT:
            raise _Failed
        self.depth += 1
        item = _Item(kind)
        self.offset += 1
        self._skip_whitespace()
        if self._can_access(0) and self._at() == closer:
            self.depth -= 1
            self.offset += 1
            return item
        if not self._can_access(0):
            raise _Failed
        self.offset -= 1
        while True:
            self.offset += 1
            self._skip_whitespace()
            key: bytes | None = None
            if kind == "object":
                if not self._can_access(0):
                    raise _Failed
                key = self._string()
                self._skip_whitespace()
                if not self._can_access(0) or self._at() != ord(":"):
                    raise _Failed
                self.offset += 1
                self._skip_whitespace()
            item.children.append((key, self._value()))
            self._skip_whitespace()
            if not (self._can_access(0) and self._at() == ord(",")):
                break
        if not self._can_access(0) or self._at() != closer:
            raise _Failed
        self.depth -= 1
        self.offset += 1
        return item


def _to_lua(item: _Item) -> TableOut:
    """`JSON::cJSON2LuaTable`: always a table; see the module docstring for what is dropped."""
    table = TableOut()
    index = 1
    for key, child in item.children:
        if item.kind == "array" and child.kind == "array":
            continue  # the array branch has no case for a nested array
        value = _lua_value(child)
        if child.kind == "null":
            continue
        if item.kind == "object":
            table.items.append(((key or b"").split(b"\0", 1)[0], value))
        else:
            table.items.append((index, value))
            index += 1
    return table


def _lua_value(item: _Item) -> LuaOut:
    if item.kind == "string":
        return item.string.split(b"\0", 1)[0]  # lua_pushstring
    if item.kind == "number":
        return item.number
    if item.kind in ("true", "false"):
        return item.kind == "true"
    if item.kind in ("object", "array"):
        return _to_lua(item)
    return None


def _print_number(number: float) -> bytes:
    if math.isnan(number) or math.isinf(number):
        return b"null"
    text = f"{number:1.15g}"
    if float(text) != number:
        text = f"{number:1.17g}"
    return text.encode()


def _print(item: _Item, formatted: bool, depth: int) -> bytes:
    """`print_value`; `depth` is the printer's nesting (arrays count too)."""
    if item.kind in ("null", "false", "true"):
        return item.kind.encode()
    if item.kind == "number":
        return _print_number(item.number)
    if item.kind == "string":
        return cjson_string(item.string)
    inner = depth + 1
    if item.kind == "array":
        separator = b", " if formatted else b","
        return b"[" + separator.join(_print(child, formatted, inner) for _, child in item.children) + b"]"
    if not formatted:
        members = (cjson_string(key or b"") + b":" + _print(child, False, inner) for key, child in item.children)
        return b"{" + b",".join(members) + b"}"
    out = b"{\n"
    for position, (key, child) in enumerate(item.children):
        out += b"\t" * inner + cjson_string(key or b"") + b":\t" + _print(child, True, inner)
        out += (b"," if position < len(item.children) - 1 else b"") + b"\n"
    return out + b"\t" * depth + b"}"


@dataclass
class CJsonCodec:
    """One `freeswitch.JSON()` object."""

    empty_table_as_object: bool = True
    unformatted: bool = False  # uninitialised in the C++ class: formatted is what a fresh object may give

    def decode(self, text: bytes | None) -> TableOut | None:
        """None: `decode` returns no value."""
        if text is None:
            return None
        with _deep_recursion():
            item = _CJsonParser(text).parse()
            return None if item is None else _to_lua(item)

    def encode(self, table: LuaTable) -> bytes:
        item = self._from_lua(table)
        if item is None:
            item = _Item("object" if self.empty_table_as_object else "array")
        with _deep_recursion():
            return _print(item, not self.unformatted, 0)

    def _from_lua(self, table: LuaTable) -> _Item | None:
        """`JSON::LuaTable2cJSON`: None for an empty table."""
        item: _Item | None = None
        for key, value in table.entries:
            if item is None:
                item = _Item("array" if key.is_one else "object")
            child = self._value(value)
            if child is None:
                continue
            if item.kind == "array":
                item.children.append((None, child))
            elif key.text is not None:  # cJSON_AddItemToObject refuses a NULL name
                item.children.append((key.text.split(b"\0", 1)[0], child))
        return item

    def _value(self, value: LuaValue) -> _Item | None:
        if isinstance(value, bool):
            return _Item("true" if value else "false")
        if isinstance(value, int | float):
            return _Item("number", number=float(value))
        if isinstance(value, bytes):
            return _Item("string", string=value.split(b"\0", 1)[0])
        if isinstance(value, Loop):
            raise RecursionError("JSON:encode of a table that contains itself overflows FreeSWITCH's C stack")
        if isinstance(value, LuaTable):
            child = self._from_lua(value)
            if child is None:
                return _Item("object" if self.empty_table_as_object else "array")
            return child
        return None  # functions, userdata, threads


# -- FusionPBX's lunajson ------------------------------------------------------------------------------------

_LUNA_COMMA = re.compile(rb"[ \n\r\t]*,[ \n\r\t]*")
_LUNA_COLON = re.compile(rb"[ \n\r\t]*:[ \n\r\t]*")
_LUNA_FRACTION = re.compile(rb"\.[0-9]*")
_LUNA_EXPONENT = re.compile(rb"[^eE]*[eE][-+]?[0-9]+")
_LUNA_MANTISSA = re.compile(rb".[0-9]*\.?[0-9]*", re.DOTALL)
_LUNA_ESCAPE = re.compile(rb"\\(.)([^\\]*)", re.DOTALL)
_LUNA_SIMPLE = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}
_LUNA_NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')
_LUNA_ESCAPES = {
    b'"': b'\\"',
    b"\\": b"\\\\",
    b"\b": b"\\b",
    b"\f": b"\\f",
    b"\n": b"\\n",
    b"\r": b"\\r",
    b"\t": b"\\t",
}


class _LunaDecoder:
    def __init__(self, text: bytes) -> None:
        self.text = text
        self.pos = 0  # 0-based; messages say it 1-based, as lunajson does

    def error(self, message: str) -> JsonError:
        return JsonError(f"parse error at {self.pos + 1}: {message}")

    def run(self) -> LuaOut:
        self.pos = self.skip(0)
        value = self.value()
        if self.skip(self.pos) != len(self.text):
            raise JsonError("json ended")
        return value

    def skip(self, at: int) -> int:
        """Past `[ \n\r\t]*`, the only whitespace lunajson knows."""
        while at < len(self.text) and self.text[at] in b" \n\r\t":
            at += 1
        return at

    def matched(self, pattern: re.Pattern[bytes]) -> bytes:
        """What a pattern that can't fail here (its first character was just seen) matches at `pos`."""
        match = pattern.match(self.text, self.pos)
        assert match is not None
        return match.group()

    def _byte(self, at: int) -> int | None:
        return self.text[at] if at < len(self.text) else None

    def value(self) -> LuaOut:
        first = self._byte(self.pos)
        if first is None or first >= 128:
            raise self.error("unexpected termination")
        self.pos += 1
        handlers: dict[int, Callable[[], LuaOut]] = {
            ord('"'): self.string,
            ord("-"): self.minus,
            ord("0"): lambda: self.zero(negative=False),
            ord("["): self.array,
            ord("{"): self.object,
            ord("n"): lambda: self.constant(b"ull", None),
            ord("f"): lambda: self.constant(b"alse", False),
            ord("t"): lambda: self.constant(b"rue", True),
        }
        if ord("1") <= first <= ord("9"):
            return self.number(negative=False)
        handler = handlers.get(first)
        if handler is None:
            raise self.error("invalid value")
        return handler()

    def constant(self, rest: bytes, value: bool | None) -> LuaOut:
        if self.text.startswith(rest, self.pos):
            self.pos += len(rest)
            return value
        raise self.error("invalid value")

    def zero(self, *, negative: bool) -> float:
        """After a `0`: a fraction and an exponent may follow; something must (a quirk of lunajson)."""
        end = self.pos
        number: bytes | None = None
        following = self._byte(end)
        if following is None:
            raise self.error("invalid number")
        if following == ord("."):
            fraction = self.matched(_LUNA_FRACTION)
            if len(fraction) == 1:
                raise self.error("invalid number")
            number, end = fraction, self.pos + len(fraction)
            following = self._byte(end)
        if following in (ord("e"), ord("E")):
            exponent = _LUNA_EXPONENT.match(self.text, self.pos)
            if exponent is None:
                raise self.error("invalid number")
            if number is not None:
                number = exponent.group()
            end = self.pos + len(exponent.group())
        self.pos = end
        value = float(number) if number is not None else 0.0
        return -value if negative else value

    def number(self, *, negative: bool) -> float:
        self.pos -= 1
        mantissa = self.matched(_LUNA_MANTISSA)
        if mantissa.endswith(b"."):
            raise self.error("invalid number")
        text, end = mantissa, self.pos + len(mantissa)
        if self._byte(end) in (ord("e"), ord("E")):
            exponent = _LUNA_EXPONENT.match(self.text, self.pos)
            if exponent is None:
                raise self.error("invalid number")
            text, end = exponent.group(), self.pos + len(exponent.group())
        self.pos = end
        value = float(text)
        return -value if negative else value

    def minus(self) -> float:
        following = self._byte(self.pos)
        if following is not None:
            self.pos += 1
            if ord("1") <= following <= ord("9"):
                return self.number(negative=True)
            if following == ord("0"):
                return self.zero(negative=True)
        raise self.error("invalid number")

    def string(self) -> bytes:
        search = self.pos
        while True:
            quote = self.text.find(b'"', search)
            if quote < 0:
                raise self.error("unterminated string")
            backslashes = 0
            while quote - backslashes - 1 >= 0 and self.text[quote - backslashes - 1] == ord("\\"):
                backslashes += 1
            if backslashes % 2 == 0:
                break
            search = quote + 1
        raw = self.text[self.pos : quote]
        self.pos = quote + 1
        if b"\\" not in raw:
            return raw
        pending = [0]  # the first half of a surrogate pair waiting for its second

        def substitute(match: re.Match[bytes]) -> bytes:
            escape, rest = match.group(1), match.group(2)
            utf8: bytes | None = None
            if escape == b"u":
                if len(rest) < 4:
                    raise JsonError("attempt to perform arithmetic on a nil value")
                if any(chr(d) not in "0123456789abcdefABCDEF" for d in rest[:4]):
                    raise self.error("invalid unicode charcode")
                code, rest = int(rest[:4], 16), rest[4:]
                if code < 0xD800 or code >= 0xE000:
                    utf8 = chr(code).encode()
                elif code < 0xDC00:
                    if pending[0] == 0:
                        pending[0] = code
                        if rest == b"":
                            return b""
                elif pending[0] == 0:
                    pending[0] = 1
                else:
                    utf8 = chr(0x10000 + ((pending[0] - 0xD800) << 10) + (code - 0xDC00)).encode()
                    pending[0] = 0
            if pending[0] != 0:
                raise self.error("invalid surrogate pair")
            if utf8 is None:
                if escape not in _LUNA_SIMPLE:
                    raise self.error("invalid escape sequence")
                utf8 = _LUNA_SIMPLE[escape]
            return utf8 + rest

        decoded = _LUNA_ESCAPE.sub(substitute, raw)
        if pending[0] != 0:
            raise self.error("invalid surrogate pair")
        return decoded

    def array(self) -> TableOut:
        table = TableOut()
        self.pos = self.skip(self.pos)
        if self._byte(self.pos) == ord("]"):
            self.pos += 1
            return table
        index = 0
        while True:
            index += 1
            table.items.append((index, self.value()))
            comma = _LUNA_COMMA.match(self.text, self.pos)
            if comma is None:
                break
            self.pos = comma.end()
        closing = re.compile(rb"[ \n\r\t]*\]").match(self.text, self.pos)
        if closing is None:
            raise self.error("no closing bracket of an array")
        self.pos = closing.end()
        return table

    def object(self) -> TableOut:
        table = TableOut()
        self.pos = self.skip(self.pos)
        if self._byte(self.pos) == ord("}"):
            self.pos += 1
            return table
        while True:
            if self._byte(self.pos) != ord('"'):
                raise self.error("not key")
            self.pos += 1
            key = self.string()
            colon = _LUNA_COLON.match(self.text, self.pos)
            if colon is None:
                raise self.error("no colon after a key")
            self.pos = colon.end()
            table.items.append((key, self.value()))
            comma = _LUNA_COMMA.match(self.text, self.pos)
            if comma is None:
                break
            self.pos = comma.end()
        closing = re.compile(rb"[ \n\r\t]*}").match(self.text, self.pos)
        if closing is None:
            raise self.error("no closing bracket of an object")
        self.pos = closing.end()
        return table


def lunajson_decode(text: bytes) -> LuaOut:
    with _deep_recursion():
        return _LunaDecoder(text).run()


def lunajson_encode(value: LuaValue) -> bytes:
    with _deep_recursion():
        return _luna_value(value)


def _luna_value(value: LuaValue) -> bytes:
    if value is None:
        return b"null"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int | float):
        if not -math.inf < value < math.inf:
            raise JsonError("invalid number")
        return f"{value:.17g}".encode()
    if isinstance(value, bytes):
        return (
            b'"'
            + _LUNA_NEEDS_ESCAPE.sub(lambda m: _LUNA_ESCAPES.get(m.group(), b"\\u00%02X" % m.group()[0]), value)
            + b'"'
        )
    if isinstance(value, Loop):
        raise JsonError("loop detected")
    if isinstance(value, Opaque):
        raise JsonError("invalid type value")
    length = value.get(0)
    if isinstance(length, int | float) and not isinstance(length, bool):
        items, index = [], 1
        while index <= length:
            items.append(_luna_value(value.get(index)))
            index += 1
        return b"[" + b",".join(items) + b"]"
    if value.get(1) is not None:
        items, index = [], 1
        while (item := value.get(index)) is not None:
            items.append(_luna_value(item))
            index += 1
        return b"[" + b",".join(items) + b"]"
    members = []
    for key, item in value.entries:
        if not isinstance(key.value, bytes):
            raise JsonError("non-string key")
        members.append(_luna_value(key.value) + b":" + _luna_value(item))
    return b"{" + b",".join(members) + b"}"
