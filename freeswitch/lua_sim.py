"""The Lua side of the FreeSWITCH simulator: runs our mod_lua scripts in a real Lua interpreter (lupa).

The script sees what mod_lua gives it: a `session` (FreeSWITCH's CoreSession, `switch_cpp.h`), the
`freeswitch` table (`consoleLog`, `API`, `msleep`, `getGlobalVariable`, `EventConsumer`, and `JSON` as in
1.10.12) and `argv`.
`API():execute("curl", …)` is mod_curl (`freeswitch.mod_curl`), making real HTTP requests. The far end of the
call is a `caller` script (`freeswitch.caller`): its utterances are written, like FreeSWITCH writes them, as
8 kHz 16-bit mono WAV files where `recordFile` is told to (a caller from whom no audio arrives leaves a bare
44-byte header; a folder that can't be written hangs the call up with DESTINATION_OUT_OF_ORDER).

The script is loaded as mod_lua loads it (`luaL_loadfile` of `<script_dir>/<name>`), with the global variable
`script_dir` set as FreeSWITCH sets it. `package.path` is Lua's own default, as stock FreeSWITCH leaves it
(its lua.conf.xml has `script-directory` commented out), or `<script_dir>/?.lua` alone as FusionPBX's
lua.conf.xml makes it (`lua_path="fusionpbx"`). `lunajson=True` installs FusionPBX's
`resources/functions/lunajson.lua` in the script directory (emulated: `freeswitch.lua_json`); `require` finds
it only where `package.path` leads there. `freeswitch_json=False` is a mod_lua without `freeswitch.JSON`.

`API():execute("uuid_audio_stream", "<uuid> start <url> mono <rate> [metadata]")` is mod_audio_stream as
measured (PROTOCOLS.md §0): `+OK Success` at once, the connection made in the background by a
`stream_sim.SimulatedCall` on an asyncio loop (the test's, or one of the simulator's own), its failures and
the server's texts and close arriving later as `mod_audio_stream::*` events, which a
`freeswitch.EventConsumer` receives (for every channel: the script filters on `Unique-ID`). That stream is
driven by the session: media flows only while the script is in `session:sleep` (FreeSWITCH feeds the media
bug from the session's reads), so a script blocked elsewhere stops the caller's audio as it would there. The
channel is on the simulated switch (`esl_server_sim`): `uuid_transfer` over ESL makes `session:ready()` false,
`uuid_kill` hangs the call up, `uuid_broadcast` plays into the stream's far end.

The emulation is strict where FreeSWITCH's SWIG bindings are: a method the binding doesn't have, a call
with `.` instead of `:`, a wrong number of arguments or an argument of the wrong type raises a Lua error,
and every such mistake is also kept in `CallResult.violations` (a script may swallow the error with pcall).
Shell access (`os.execute`, `io.popen`) raises too: our scripts must never build a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import shutil
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from freeswitch.caller import CallerAction, HangUp, Press, Recorded, Run, Say, Silence, record_like_freeswitch
from freeswitch.esl_protocol import EslEvent
from freeswitch.esl_server_sim import EslServerSimulator
from freeswitch.lua_json import (
    CJsonCodec,
    JsonError,
    Loop,
    LuaKey,
    LuaOut,
    LuaTable,
    LuaValue,
    Opaque,
    TableOut,
    lunajson_decode,
    lunajson_encode,
)
from freeswitch.mod_curl import CurlExchange, Flavour, ModCurl
from freeswitch.stream_sim import SimulatedCall
from secretary.errors import BadInput
from secretary.speech.audio import Pcm, parse_wav, wav_bytes

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
LUA_VERSIONS = ("lua52", "lua53", "lua54")
LUNAJSON_FILE = "resources/functions/lunajson.lua"  # under the script directory, where FusionPBX installs it
LuaPath = Literal["stock", "fusionpbx"]

# Hang-up causes `switch_channel_str2cause` knows (the ones a script plausibly uses).
HANGUP_CAUSES = {
    "NONE", "UNALLOCATED_NUMBER", "NO_ROUTE_TRANSIT_NET", "NO_ROUTE_DESTINATION", "CHANNEL_UNACCEPTABLE",
    "CALL_AWARDED_DELIVERED", "NORMAL_CLEARING", "USER_BUSY", "NO_USER_RESPONSE", "NO_ANSWER",
    "SUBSCRIBER_ABSENT", "CALL_REJECTED", "NUMBER_CHANGED", "REDIRECTION_TO_NEW_DESTINATION",
    "EXCHANGE_ROUTING_ERROR", "DESTINATION_OUT_OF_ORDER", "INVALID_NUMBER_FORMAT", "FACILITY_REJECTED",
    "RESPONSE_TO_STATUS_ENQUIRY", "NORMAL_UNSPECIFIED", "NORMAL_CIRCUIT_CONGESTION", "NETWORK_OUT_OF_ORDER",
    "NORMAL_TEMPORARY_FAILURE", "SWITCH_CONGESTION", "ACCESS_INFO_DISCARDED", "REQUESTED_CHAN_UNAVAIL",
    "OUTGOING_CALL_BARRED", "INCOMING_CALL_BARRED", "BEARERCAPABILITY_NOTAUTH", "SERVICE_UNAVAILABLE",
    "SERVICE_NOT_IMPLEMENTED", "RECOVERY_ON_TIMER_EXPIRE", "ORIGINATOR_CANCEL", "LOSE_RACE",
    "MANAGER_REQUEST", "ATTENDED_TRANSFER", "ALLOTTED_TIMEOUT", "USER_CHALLENGE", "MEDIA_TIMEOUT",
    "SYSTEM_SHUTDOWN", "CRASH",
}  # fmt: skip
LOG_LEVELS = {"console", "debug", "info", "notice", "warning", "err", "crit", "alert"}

# Parameter kinds as SWIG checks them: "s" a `char *` (a string, a number, or nil), "i" an `int` (a
# number or a numeric string). (required, kinds) per method; the class name is what SWIG's errors say.
SESSION_METHODS: dict[str, tuple[int, str]] = {
    "answer": (0, ""),
    "preAnswer": (0, ""),
    "ready": (0, ""),
    "answered": (0, ""),
    "mediaReady": (0, ""),
    "hangup": (0, "s"),
    "hangupCause": (0, ""),
    "getState": (0, ""),
    "get_uuid": (0, ""),
    "getVariable": (1, "s"),
    "setVariable": (2, "ss"),
    "sleep": (1, "ii"),
    "streamFile": (1, "si"),
    "recordFile": (1, "siii"),
    "transfer": (1, "sss"),
    "execute": (1, "ss"),
    "getDigits": (3, "isiii"),
    "playAndGetDigits": (8, "iiiisssssis"),
    "setInputCallback": (1, "ss"),
    "unsetInputCallback": (0, ""),
    "flushDigits": (0, ""),
    "flushEvents": (0, ""),
    "consoleLog": (2, "ss"),
}
API_METHODS: dict[str, tuple[int, str]] = {"execute": (1, "ss"), "executeString": (1, "s"), "getTime": (0, "")}
CONSUMER_METHODS: dict[str, tuple[int, str]] = {"bind": (1, "ss"), "pop": (0, "ii"), "cleanup": (0, "")}
EVENT_METHODS: dict[str, tuple[int, str]] = {
    "getHeader": (1, "s"),
    "getBody": (0, ""),
    "getType": (0, ""),
    "serialize": (0, "s"),
}
MODULE_FUNCTIONS: dict[str, tuple[int, str]] = {
    "consoleLog": (2, "ss"),
    "consoleCleanLog": (1, "s"),
    "msleep": (1, "i"),
    "getGlobalVariable": (1, "s"),
}
CONSUMER_SPEC = (0, "ssi")  # freeswitch.EventConsumer(event_name, subclass_name, queue_length)
# Event names a consumer may bind here (switch_event.c knows more; these are the ones a script plausibly uses).
EVENT_NAMES = {
    "ALL", "CUSTOM", "DTMF", "BACKGROUND_JOB", "CHANNEL_ANSWER", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "PLAYBACK_START", "PLAYBACK_STOP", "HEARTBEAT",
}  # fmt: skip
STREAM_RATES = {"8k": 8000, "16k": 16000}
STREAM_OK, STREAM_FAILED = "+OK Success\n", "-ERR Operation Failed\n"
TRANSFER_GRACE_S = 10.0  # after a transfer the server ends the stream; the simulated call ends it after this
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")

# Runs once in each new Lua state: builds `session`, `freeswitch` and `argv` as proxies of `backend`, a
# Python callable `backend(kind, name, handle, nargs, ...) -> ok, value`. Lua 5.1-5.4 compatible, like the scripts.
_BOOTSTRAP = r"""
local backend, specs, module_functions, script_name, script_args = ...
local unpack = table.unpack or unpack

local function forward(kind, name, handle, ...)
    local ok, value = backend(kind, name, handle, select("#", ...), ...)
    if not ok then
        error(value, 3)
    end
    return value
end

local function violation(message)
    backend("violation", message, nil, 0)
    error(message, 3)
end

local results = {} -- "Kind.method" -> what turns the backend's value into the binding's (a handle into an object)

-- An object as SWIG makes it: methods only, called with ':', on this very object (`handle` names it).
local function proxy(kind, handle)
    local object, functions = {}, {}
    for name in pairs(specs[kind]) do
        local wrap = results[kind .. "." .. name]
        functions[name] = function(self, ...)
            if self ~= object then
                local got = self == nil and "no value" or type(self)
                local message = "Error in " .. kind .. "::" .. name .. " (arg 1), expected '" .. kind
                    .. " *' got '" .. got .. "'"
                backend("violation", message, nil, 0)
                error(message, 2)
            end
            local value = forward(kind, name, handle, ...)
            if wrap then
                return wrap(value)
            end
            return value
        end
    end
    return setmetatable(object, {
        __index = function(_, key)
            local method = functions[key]
            if method ~= nil then
                return method
            end
            violation(kind .. " has no method or field '" .. tostring(key) .. "'")
        end,
        __newindex = function(_, key)
            violation("cannot set " .. kind .. "." .. tostring(key))
        end,
    })
end

results["EventConsumer.pop"] = function(handle)
    if handle == nil then
        return nil
    end
    return proxy("Event", handle)
end

session = proxy("CoreSession", nil)

local fs = {}
for name in pairs(module_functions) do
    fs[name] = function(...) return forward("freeswitch", name, nil, ...) end
end
fs.API = function(s)
    if s ~= nil and s ~= session then
        violation("freeswitch.API takes a session or nothing")
    end
    return proxy("API", nil)
end
fs.EventConsumer = function(...)
    return proxy("EventConsumer", forward("freeswitch", "EventConsumer", nil, ...))
end
freeswitch = setmetatable(fs, {
    __index = function(_, key)
        violation("freeswitch." .. tostring(key) .. " is not emulated")
    end,
})

local function no_shell(name)
    return function()
        violation(name .. " is not allowed: never build a shell command")
    end
end
os.execute = no_shell("os.execute")
io.popen = no_shell("io.popen")

argv = { [0] = script_name }
for i = 1, #script_args do
    argv[i] = script_args[i]
end
"""


# Runs after _BOOTSTRAP: `freeswitch.JSON` and FusionPBX's lunajson, both forwarded to `freeswitch.lua_json`.
# A value crosses as a description: strings as hex (any byte survives), a table as its entries in `next`
# order, with what the C side would see of each key (`lua_tostring`, and whether it converts to 1).
_CODECS_BOOTSTRAP = r"""
local backend, fs, freeswitch_json, lunajson_file = ...

local function refuse(message)
    backend("violation", message, nil, 0)
    error(message, 3)
end

local function call(kind, name, ...)
    local ok, value = backend(kind, name, nil, select("#", ...), ...)
    if not ok then
        error(value, 3)
    end
    return value
end

local function hex(s)
    return (string.gsub(s, ".", function(c) return string.format("%02x", string.byte(c)) end))
end

local describe
local function describe_key(key)
    local kind = type(key)
    local text = false
    if kind == "number" or kind == "string" then
        text = hex(tostring(key))
    end
    local value = kind == "table" and { "o", "table" } or describe(key, {})
    return { value, text, tonumber(key) == 1 }
end

describe = function(value, path)
    local kind = type(value)
    if kind == "string" then
        return { "s", hex(value) }
    elseif kind == "number" then
        return { "n", value }
    elseif kind == "boolean" then
        return { "b", value }
    elseif kind == "nil" then
        return { "z" }
    elseif kind ~= "table" then
        return { "o", kind }
    elseif path[value] then
        return { "l" }
    end
    path[value] = true
    local entries = {}
    for key, item in next, value do
        entries[#entries + 1] = { describe_key(key), describe(item, path) }
    end
    path[value] = nil
    return { "t", entries }
end

if freeswitch_json then
    fs.JSON = function(...)
        if select("#", ...) ~= 0 then
            refuse("Error in LUA::JSON::JSON expected 0..0 args, got " .. select("#", ...))
        end
        local handle = call("JSON", "new")
        local object = {}
        local function check(self, name, given)
            if self ~= object then
                refuse("Error in LUA::JSON::" .. name .. " (arg 1), expected 'LUA::JSON *' got '" .. type(self) .. "'")
            end
            if given ~= 1 then
                refuse("Error in LUA::JSON::" .. name .. " expected 2..2 args, got " .. (given + 1))
            end
        end
        local function setter(name)
            return function(self, ...)
                check(self, name, select("#", ...))
                local flag = ...
                if type(flag) ~= "boolean" then
                    refuse("Error in LUA::JSON::" .. name .. " (arg 2), expected 'bool' got '" .. type(flag) .. "'")
                end
                call("JSON", name, handle, flag)
            end
        end
        local methods = {
            decode = function(self, ...)
                check(self, "decode", select("#", ...))
                local text = ...
                local kind = type(text)
                if kind ~= "nil" and kind ~= "string" and kind ~= "number" then
                    refuse("Error in LUA::JSON::decode (arg 2), expected 'char const *' got '" .. kind .. "'")
                end
                local value = call("JSON", "decode", handle, text ~= nil and hex(tostring(text)) or nil)
                if value == nil then
                    return -- cJSON_Parse failed: no value at all
                end
                return value
            end,
            encode = function(self, ...)
                check(self, "encode", select("#", ...))
                local value = ...
                if type(value) ~= "table" then
                    refuse("Error in LUA::JSON::encode (arg 2), expected 'SWIGLUA_TABLE' got '" .. type(value) .. "'")
                end
                return call("JSON", "encode", handle, describe(value, {}))
            end,
            encode_empty_table_as_object = setter("encode_empty_table_as_object"),
            return_unformatted_json = setter("return_unformatted_json"),
        }
        return setmetatable(object, {
            __index = function(_, key)
                local method = methods[key]
                if method == nil then
                    refuse("JSON has no emulated method or field '" .. tostring(key) .. "'")
                end
                return method
            end,
            __newindex = function(_, key)
                refuse("cannot set JSON." .. tostring(key))
            end,
        })
    end
else
    local meta = getmetatable(fs)
    local complain = meta.__index
    meta.__index = function(t, key)
        if key == "JSON" then
            return nil -- a mod_lua older than freeswitch.JSON
        end
        return complain(t, key)
    end
end

if lunajson_file then
    local function luna(name, ...)
        local ok, value = backend("lunajson", name, nil, select("#", ...), ...)
        if not ok then
            error(value, 0) -- raised inside lunajson's own files, not where the script called it
        end
        return value
    end
    local module = {
        decode = function(...)
            local count = select("#", ...)
            local json = ...
            if count > 1 then
                refuse("lunajson.decode: pos, nullv and arraylen are not emulated")
            end
            if type(json) == "number" then
                json = tostring(json)
            elseif type(json) ~= "string" then
                local got = count == 0 and "no value" or type(json)
                error("bad argument #1 to 'find' (string expected, got " .. got .. ")", 2)
            end
            return luna("decode", hex(json))
        end,
        encode = function(...)
            if select("#", ...) > 1 then
                refuse("lunajson.encode: nullv is not emulated")
            end
            return luna("encode", describe((...), {}))
        end,
    }
    local searchers = package.searchers or package.loaders
    table.insert(searchers, 2, function(name)
        if name ~= "resources.functions.lunajson" then
            return nil
        end
        local relative = string.gsub(name, "%.", "/")
        for template in string.gmatch(package.path, "[^;]+") do
            if string.gsub(template, "%?", relative) == lunajson_file then
                return function() return module end, lunajson_file
            end
        end
        return "\n\tno file '" .. lunajson_file .. "' (FusionPBX's lunajson is not on package.path)"
    end)
end
"""


@dataclass(frozen=True)
class Transfer:
    extension: str
    dialplan: str
    context: str


@dataclass(frozen=True)
class Played:
    """A file `streamFile` played: its path as the script named it and, if it could be read, its bytes."""

    path: str
    data: bytes | None
    completed: bool

    def pcm(self) -> Pcm:
        if self.data is None:
            raise FileNotFoundError(self.path)
        return parse_wav(self.data)


@dataclass(frozen=True)
class Recording:
    path: str
    pcm: Pcm
    stopped_by: str


@dataclass
class CallResult:
    """Everything observable about one simulated call, in order."""

    uuid: str
    answered: bool = False
    transfer: Transfer | None = None
    hangup_cause: str | None = None
    # "caller", "script", "freeswitch" (recordFile could not open its file) or "switch" (uuid_kill over ESL)
    hung_up_by: str | None = None
    played: list[Played] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)
    exchanges: list[CurlExchange] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lua_error: str | None = None

    def played_paths(self) -> list[str]:
        return [p.path for p in self.played]

    def log_text(self) -> str:
        return "".join(f"[{level}] {message}" for level, message in self.log)


class SwigArgumentError(Exception):
    pass


def _lua_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    name = type(value).__name__.lower()
    return next((kind for kind in ("table", "function", "thread") if kind in name), "userdata")


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value)
    return f"{value:.14g}"


def convert_arguments(cls: str, name: str, spec: tuple[int, str], args: Sequence[Any]) -> list[Any]:
    """Check and convert arguments as SWIG's Lua wrappers do; raise with SWIG's wording."""
    required, kinds = spec
    if not required <= len(args) <= len(kinds):
        raise SwigArgumentError(f"Error in {cls}::{name} expected {required}..{len(kinds)} args, got {len(args)}")
    out: list[Any] = []
    for position, (kind, value) in enumerate(zip(kinds, args, strict=False), start=2):
        if kind == "s":
            if value is not None and (isinstance(value, bool) or not isinstance(value, str | bytes | int | float)):
                raise SwigArgumentError(
                    f"Error in {cls}::{name} (arg {position}), expected 'char *' got '{_lua_type(value)}'"
                )
            out.append(_as_text(value))
        else:
            if isinstance(value, bool) or value is None:
                raise SwigArgumentError(
                    f"Error in {cls}::{name} (arg {position}), expected 'int' got '{_lua_type(value)}'"
                )
            if isinstance(value, str | bytes):
                text = _as_text(value) or ""
                if not _NUMBER.match(text):
                    raise SwigArgumentError(f"Error in {cls}::{name} (arg {position}), expected 'int' got 'string'")
                value = float(text)
            if not isinstance(value, int | float):
                raise SwigArgumentError(
                    f"Error in {cls}::{name} (arg {position}), expected 'int' got '{_lua_type(value)}'"
                )
            out.append(int(value))
    return out


@dataclass(eq=False)
class _Consumer:
    """A `freeswitch.EventConsumer`: its bindings and its queue (filled in the loop's thread, read in Lua's)."""

    length: int
    bindings: set[tuple[str, str]] = field(default_factory=set)  # (event name, subclass; "" = any)
    queue: deque[EslEvent] = field(default_factory=deque)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wants(self, event: EslEvent) -> bool:
        return any(
            name == "ALL" or (name == event.name and subclass in ("", event.subclass))
            for name, subclass in self.bindings
        )

    def offer(self, event: EslEvent) -> None:
        if self.wants(event):
            with self.arrived:
                if len(self.queue) < self.length:  # a full queue drops, as switch_queue_trypush does
                    self.queue.append(event)
                self.arrived.notify_all()

    def take(self, block: bool, timeout_ms: int) -> EslEvent | None:
        with self.arrived:
            if block and not self.queue:
                self.arrived.wait_for(lambda: bool(self.queue), timeout_ms / 1000 if timeout_ms > 0 else None)
            return self.queue.popleft() if self.queue else None


class _SwitchChannel:
    """The simulated call as the ESL server sees it (its `ChannelHooks`): commands run in the loop's thread."""

    def __init__(self, sim: FreeSwitchSim) -> None:
        self._sim = sim

    def play_file(self, path: str) -> bool:
        stream = self._sim.stream
        return stream.play_file(path) if stream is not None else Path(path).is_file()

    def break_all(self) -> None:
        if self._sim.stream is not None:
            self._sim.stream.break_all()

    def hangup(self, cause: str) -> None:
        self._sim.switch_hangs_up(cause)

    def transfer(self, extension: str, context: str) -> None:
        self._sim.switch_transfers(extension, context)

    def getvar(self, name: str) -> str | None:
        return self._sim.variables.get(name)


class _LoopThread:
    """An asyncio loop of the simulator's own, for a call whose test gave none."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lua-sim-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class FreeSwitchSim:
    """One call through one Lua script. Build it, `run()` it once, read the `CallResult`."""

    def __init__(
        self,
        *,
        variables: dict[str, str] | None = None,
        global_variables: dict[str, str] | None = None,
        caller: Iterable[CallerAction] | Callable[[], CallerAction | None] = (),
        script_dir: Path = LUA_DIR,
        lua_path: LuaPath = "stock",
        freeswitch_json: bool = True,
        lunajson: bool = False,
        lua_version: str = "lua53",
        record_rate: int = 8000,
        curl_flavour: Flavour = "1.10",
        curl_loaded: bool = True,
        audio_stream_loaded: bool = True,
        sound_prefix: Path | None = None,
        on_exchange: Callable[[CurlExchange], None] | None = None,
        copy_played_to: Path | None = None,
        call_uuid: str | None = None,
        switch: EslServerSimulator | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        stream_mode: Literal["module", "event"] = "module",
        temp_dir: Path | None = None,
    ) -> None:
        """`caller` is a list of actions, or a function returning the next one (None: the caller is done).
        `global_variables` add to (or replace) the ones FreeSWITCH always has (`script_dir`).
        `switch`: the simulated switch the channel lives on (its ESL server and event bus; by default one of
        its own, without a socket); `loop`: where that switch and the streams run (then `run()` must be
        called from another thread, e.g. `asyncio.to_thread`); `stream_mode`, `temp_dir`: which
        mod_audio_stream build `uuid_audio_stream` behaves as, and where the event build writes its files;
        `audio_stream_loaded=False`: the module is not loaded (FusionPBX: not enabled in Advanced › Modules)."""
        self.uuid = call_uuid or str(uuid.uuid4())
        self.result = CallResult(uuid=self.uuid)
        self.variables: dict[str, str] = {"uuid": self.uuid, "call_uuid": self.uuid}
        if sound_prefix is not None:
            self.variables["sound_prefix"] = str(sound_prefix)
        self.variables.update(variables or {})
        self.global_variables: dict[str, str] = {"script_dir": str(script_dir), **(global_variables or {})}
        # A list is known in advance; a function (a person typing) is only asked when a recording starts.
        self._pending: deque[CallerAction] = deque()
        self._next_action: Callable[[], CallerAction | None] | None = None
        if callable(caller):
            self._next_action = caller
        else:
            self._pending.extend(caller)
        self.script_dir = script_dir
        self.lua_path = lua_path
        self.freeswitch_json = freeswitch_json
        self.lunajson = lunajson
        self._codecs: dict[int, CJsonCodec] = {}
        self.lua_version = lua_version
        self.record_rate = record_rate
        self.curl = ModCurl(flavour=curl_flavour, on_exchange=self._exchanged) if curl_loaded else None
        self.audio_stream_loaded = audio_stream_loaded
        self._on_exchange = on_exchange
        self.copy_played_to = copy_played_to
        self._up = True
        self._transferred = False
        self._dtmf: deque[str] = deque()
        self._input_callback: tuple[str, str | None] | None = None
        self._lua: Any = None
        self._session_proxy: Any = None
        self._ran = False
        self.switch = switch or EslServerSimulator()
        self._loop = loop
        self._own_loop: _LoopThread | None = None
        self._stream_mode = stream_mode
        self._temp_dir = temp_dir
        self._state = threading.Lock()  # the channel's state, changed by the script and by ESL commands
        self._consumers: dict[int, _Consumer] = {}
        self._unlisten: list[Callable[[], None]] = []
        self._event_objects: dict[int, EslEvent] = {}
        self.streams: list[SimulatedCall] = []  # every stream `uuid_audio_stream start` made, in order
        self._stream_made = asyncio.Event()  # set in the loop's thread

    @property
    def stream(self) -> SimulatedCall | None:
        """The call's current stream (the last one started), if any."""
        return self.streams[-1] if self.streams else None

    async def wait_stream(self, timeout_s: float = 10.0) -> SimulatedCall:
        """For a test on `loop`: the first stream the script starts (the caller speaks into it)."""
        async with asyncio.timeout(timeout_s):
            await self._stream_made.wait()
        return self.streams[0]

    # -- running ---------------------------------------------------------------------------------------------

    def run(self, script: str = "secretary_ai.lua", args: Sequence[str] = ()) -> CallResult:
        if self._ran:
            raise RuntimeError("a FreeSwitchSim runs one call")
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("run() blocks: call it from another thread than its loop's (asyncio.to_thread)")
        self._ran = True
        self.switch.register(self.uuid, _SwitchChannel(self))
        try:
            return self._run(script, args)
        finally:
            self._end_streams()
            self.switch.unregister(self.uuid)
            for unlisten in self._unlisten:
                self._in_loop_soon(unlisten)
            if self._own_loop is not None:
                self._own_loop.stop()

    def _run(self, script: str, args: Sequence[str]) -> CallResult:
        lupa = importlib.import_module(f"lupa.{self.lua_version}")
        self._lua = lupa.LuaRuntime(unpack_returned_tuples=True, register_eval=False, register_builtins=False)
        lua_globals = self._lua.globals()
        lua_globals.python = None  # mod_lua has no bridge to Python: neither may the script here
        if self.lua_path == "fusionpbx":  # LUA_PATH=$${script_dir}/?.lua, without ';;': no default entries
            lua_globals.package.path = f"{self.script_dir}/?.lua"
        bootstrap = self._lua.execute("return function(...) " + _BOOTSTRAP + " end")
        specs = {
            kind: self._lua.table_from(dict.fromkeys(methods, True))
            for kind, methods in (
                ("CoreSession", SESSION_METHODS),
                ("API", API_METHODS),
                ("EventConsumer", CONSUMER_METHODS),
                ("Event", EVENT_METHODS),
            )
        }
        bootstrap(
            self._backend,
            self._lua.table_from(specs),
            self._lua.table_from(dict.fromkeys(MODULE_FUNCTIONS, True)),
            script,
            self._lua.table_from(list(args)),
        )
        codecs = self._lua.execute("return function(...) " + _CODECS_BOOTSTRAP + " end")
        lunajson_file = str(self.script_dir / LUNAJSON_FILE) if self.lunajson else None
        codecs(self._backend, lua_globals.freeswitch, self.freeswitch_json, lunajson_file)
        self._session_proxy = lua_globals.session
        loaded = lua_globals.loadfile(str(self.script_dir / script))  # mod_lua: luaL_loadfile
        if isinstance(loaded, tuple):  # (nil, message): the script does not compile
            self.result.lua_error = str(loaded[1])
            return self.result
        chunk = loaded
        try:
            chunk()
        except lupa.LuaError as exc:
            self.result.lua_error = str(exc)
        return self.result

    def _exchanged(self, exchange: CurlExchange) -> None:
        self.result.exchanges.append(exchange)
        if self._on_exchange is not None:
            self._on_exchange(exchange)

    def _backend(self, kind: str, name: str, handle: int | None, nargs: int, *args: Any) -> tuple[bool, Any]:
        """Every call from Lua lands here: check it, run it, and turn mistakes into Lua errors. `handle` names
        the object of an `EventConsumer` or `Event` method."""
        if kind == "violation":
            self.result.violations.append(name)
            return True, None
        args = args[:nargs] + (None,) * (nargs - len(args))
        try:
            if kind in ("JSON", "lunajson"):
                return True, self._codec(kind, name, args)
            if kind == "CoreSession":
                values = convert_arguments(kind, name, SESSION_METHODS[name], args)
                return True, getattr(self, f"_session_{name}")(*values)
            if kind == "API":
                values = convert_arguments(kind, name, API_METHODS[name], args)
                return True, getattr(self, f"_api_{name}")(*values)
            if kind == "EventConsumer":
                values = convert_arguments(kind, name, CONSUMER_METHODS[name], args)
                return True, getattr(self, f"_consumer_{name}")(self._consumers[int(handle or 0)], *values)
            if kind == "Event":
                values = convert_arguments(kind, name, EVENT_METHODS[name], args)
                return True, getattr(self, f"_event_{name}")(self._event_objects[int(handle or 0)], *values)
            if name == "EventConsumer":
                values = convert_arguments("EventConsumer", "EventConsumer", CONSUMER_SPEC, args)
                return True, self._fs_EventConsumer(*values)
            values = convert_arguments("freeswitch", name, MODULE_FUNCTIONS[name], args)
            return True, getattr(self, f"_fs_{name}")(*values)
        except SwigArgumentError as exc:
            self.result.violations.append(str(exc))
            return False, str(exc)
        except JsonError as exc:  # what the codec itself raises: the script may expect it
            return False, str(exc)
        except Exception as exc:  # a bug in the simulator or a call it refuses: never hide it
            message = f"simulator: {kind}.{name}: {exc}"
            self.result.violations.append(message + "\n" + traceback.format_exc())
            return False, message

    # -- JSON codecs (freeswitch.lua_json) ------------------------------------------------------------------

    def _codec(self, kind: str, name: str, args: tuple[Any, ...]) -> Any:
        if kind == "lunajson":
            if name == "decode":
                return self._lua_out(lunajson_decode(bytes.fromhex(args[0])))
            return lunajson_encode(self._described(args[0]))
        if name == "new":
            handle = len(self._codecs) + 1
            self._codecs[handle] = CJsonCodec()
            return handle
        codec = self._codecs[args[0]]
        if name == "decode":
            decoded = codec.decode(None if args[1] is None else bytes.fromhex(args[1]))
            return None if decoded is None else self._lua_out(decoded)
        if name == "encode":
            value = self._described(args[1])
            assert isinstance(value, LuaTable)
            return codec.encode(value)
        if name == "encode_empty_table_as_object":
            codec.empty_table_as_object = bool(args[1])
        else:
            codec.unformatted = bool(args[1])
        return None

    def _described(self, description: Any) -> LuaValue:
        """A value as _CODECS_BOOTSTRAP's `describe` handed it over."""
        tag = description[1]
        if tag == "s":
            return bytes.fromhex(description[2])
        if tag in ("n", "b"):
            value: LuaValue = description[2]
            return value
        if tag == "z":
            return None
        if tag == "l":
            return Loop()
        if tag == "o":
            return Opaque(str(description[2]))
        entries = description[2]
        out: list[tuple[LuaKey, LuaValue]] = []
        for index in range(1, len(entries) + 1):
            key, value = entries[index][1], entries[index][2]
            text = key[2]
            key_value = self._described(key[1])
            assert not isinstance(key_value, LuaTable | Loop) and key_value is not None
            out.append(
                (
                    LuaKey(key_value, None if text is False else bytes.fromhex(text), bool(key[3])),
                    self._described(value),
                )
            )
        return LuaTable(tuple(out))

    def _lua_out(self, value: LuaOut) -> Any:
        if not isinstance(value, TableOut):
            return value
        table = self._lua.table()
        for key, item in value.items:
            table[key] = self._lua_out(item)
        return table

    # -- the caller's side -------------------------------------------------------------------------------

    def _caller_action(self, moment: str) -> CallerAction | None:
        """The caller's next action if it happens at `moment`; `Run` steps are done on the way."""
        while True:
            if not self._pending:
                action = self._next_action() if self._next_action is not None and moment == "record" else None
                if action is None:
                    return None
                self._pending.append(action)
            action = self._pending[0]
            if isinstance(action, Run):
                self._pending.popleft()
                self.result.events.append(("run",))
                action.action()
                continue
            if moment == "prompt" and not (isinstance(action, Press | HangUp) and action.during == "prompt"):
                return None
            self._pending.popleft()
            return action

    def _freeswitch_hangs_up(self, cause: str) -> None:
        if self._up:
            self._up = False
            self.result.hangup_cause = cause
            self.result.hung_up_by = "freeswitch"
            self.result.events.append(("freeswitch_hangup", cause))

    def _caller_hangs_up(self, cause: str = "NORMAL_CLEARING") -> None:
        with self._state:
            if not self._up:
                return
            self._up = False
            self.result.hangup_cause = cause
            self.result.hung_up_by = "caller"
            self.result.events.append(("caller_hangup", cause))
        self._end_streams(wait=False)

    # -- what the switch does to the channel (ESL commands, in the loop's thread) ----------------------------

    def switch_transfers(self, extension: str, context: str) -> None:
        """`uuid_transfer`: the channel leaves the script (`ready()` turns false) for the new extension."""
        with self._state:
            self.result.events.append(("uuid_transfer", extension, context))
            if self._ready():
                self._transferred = True
                self.result.transfer = Transfer(extension, "XML", context)

    def switch_hangs_up(self, cause: str) -> None:
        """`uuid_kill`: the call ends; the module closes its stream as on any hang-up."""
        with self._state:
            self.result.events.append(("uuid_kill", cause))
            if not self._up:
                return
            self._up = False
            self.result.hangup_cause = cause.upper()
            self.result.hung_up_by = "switch"
        for stream in self.streams:
            asyncio.get_running_loop().create_task(stream.hang_up())

    def _deliver_digits(self, digits: str) -> bool:
        """DTMF arriving during a prompt or recording. Returns True when the input callback stopped it."""
        self._dtmf.extend(digits)
        if self._input_callback is None:
            return False  # without a callback the digits wait in the queue for getDigits
        name, arg = self._input_callback
        function = self._lua.globals()[name]
        if function is None:
            raise RuntimeError(f"input callback {name!r} is not a global function")
        while self._dtmf:
            digit = self._dtmf.popleft()
            payload = self._lua.table_from({"digit": digit, "duration": 2000})
            extra = [self._lua.globals()[arg]] if arg else []
            answer = function(self._session_proxy, "dtmf", payload, *extra)
            text = _as_text(answer) if isinstance(answer, str | bytes | int | float) else None
            if text and text not in ("true", "undefined") and not text.startswith(("speed", "volume")):
                return True
        return False

    # -- CoreSession -----------------------------------------------------------------------------------

    def _ready(self) -> bool:
        return self._up and not self._transferred

    def _session_answer(self) -> int:
        self.result.answered = True
        self.result.events.append(("answer",))
        return 1

    def _session_preAnswer(self) -> int:
        return 1

    def _session_ready(self) -> bool:
        return self._ready()

    def _session_answered(self) -> bool:
        return self.result.answered

    def _session_mediaReady(self) -> bool:
        return self._ready()

    def _session_hangup(self, cause: str | None = "normal_clearing") -> None:
        name = (cause or "normal_clearing").upper()
        if name not in HANGUP_CAUSES:
            raise ValueError(f"unknown hangup cause {cause!r}")
        with self._state:
            self.result.events.append(("hangup", name))
            if not self._up:
                return
            self._up = False
            self.result.hangup_cause = name
            self.result.hung_up_by = "script"
        self._end_streams(wait=False)

    def _session_hangupCause(self) -> str:
        # The binding's cause is only set by a hangup hook the script does not install: a real FreeSWITCH
        # answers "NONE" after the caller hung up, and `hangup_cause` is no channel variable yet either.
        return "NONE"

    def _session_getState(self) -> str:
        if not self._up:
            return "CS_HANGUP"
        return "CS_ROUTING" if self._transferred else "CS_EXECUTE"

    def _session_get_uuid(self) -> str:
        return self.uuid

    def _session_getVariable(self, name: str | None) -> str | None:
        return self.variables.get(name or "")

    def _session_setVariable(self, name: str | None, value: str | None) -> None:
        if not name:
            raise ValueError("setVariable needs a name")
        if value is None:
            self.variables.pop(name, None)
        else:
            self.variables[name] = value

    def _session_sleep(self, ms: int, sync: int = 0) -> int:
        """Reads the call's media for `ms`: the stream's frames flow meanwhile, in real time."""
        self.result.events.append(("sleep", ms))
        if self._ready() and ms > 0:
            stream = self.stream
            if stream is not None:
                self._in_loop(self._read_media(stream, ms))
            else:
                time.sleep(ms / 1000)
        return 1 if self._ready() else 0

    @staticmethod
    async def _read_media(stream: SimulatedCall, ms: int) -> None:
        if stream.connected.is_set() and not stream.closed.is_set():
            await stream.advance(ms)
        else:
            await asyncio.sleep(ms / 1000)

    def _resolve_sound(self, path: str) -> Path:
        candidate = Path(path)
        if not candidate.is_absolute() and self.variables.get("sound_prefix"):
            candidate = Path(self.variables["sound_prefix"]) / candidate
        return candidate

    def _session_streamFile(self, path: str | None, start_sample: int = 0) -> int:
        if not path:
            raise ValueError("streamFile needs a file")
        self.result.events.append(("streamFile", path))
        if not self._ready():
            return 0
        file = self._resolve_sound(path)
        try:
            data = file.read_bytes()
            parse_wav(data)
        except (OSError, BadInput):
            self.result.played.append(Played(path, None, completed=False))
            self._fs_consoleLog("err", f"simulator: can't play {file}\n")
            return 0
        completed = True
        action = self._caller_action("prompt")
        if isinstance(action, Press):
            completed = not self._deliver_digits(action.digits)
        elif isinstance(action, HangUp):
            self._caller_hangs_up(action.cause)
            completed = False
        self.result.played.append(Played(path, data, completed))
        if self.copy_played_to is not None:
            self.copy_played_to.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, self.copy_played_to / f"{len(self.result.played):02d}-{file.name}")
        return 1 if completed and self._ready() else 0

    def _session_recordFile(
        self, path: str | None, time_limit: int = 0, silence_threshold: int = 0, silence_hits: int = 0
    ) -> int:
        if not path:
            return 0
        self.result.events.append(("recordFile", path, time_limit, silence_threshold, silence_hits))
        file = Path(path)
        if not file.is_absolute():
            file = self._resolve_sound(path)
        if not file.parent.is_dir() or not os.access(file.parent, os.W_OK | os.X_OK):
            self._fs_consoleLog("err", f"simulator: can't open {file} for recording\n")
            self._freeswitch_hangs_up("DESTINATION_OUT_OF_ORDER")  # switch_ivr_record_file does
            return 0
        self.variables["silence_hits_exhausted"] = "false"
        if not self._ready():
            file.write_bytes(wav_bytes(Pcm(b"", self.record_rate)))
            return 0
        action = self._caller_action("record")
        status = 1
        if isinstance(action, Silence):  # no frames written, but the silence detector still counts
            recorded = Recorded(Pcm(b"", self.record_rate), "silence" if silence_threshold > 0 else "time_limit")
            if recorded.stopped_by == "silence":
                self.variables["silence_hits_exhausted"] = "true"
        elif isinstance(action, Say):
            recorded = record_like_freeswitch(
                action.audio, self.record_rate, time_limit, silence_threshold, silence_hits, action.then_hang_up
            )
            if recorded.stopped_by in ("hangup", "end_of_speech"):
                self._caller_hangs_up()  # still 1, the partial file kept (measured on 1.10.12)
            if recorded.stopped_by == "silence":
                self.variables["silence_hits_exhausted"] = "true"
        else:
            recorded = Recorded(Pcm(b"", self.record_rate), "hangup")
            if isinstance(action, Press):
                recorded = Recorded(Pcm(bytes(2 * self.record_rate // 5), self.record_rate), "silence")
                if self._deliver_digits(action.digits):
                    status = 0
            else:  # a hang-up, or a caller with nothing more to say: recordFile still returns 1
                self._caller_hangs_up(action.cause if isinstance(action, HangUp) else "NORMAL_CLEARING")
        file.write_bytes(wav_bytes(recorded.pcm))
        self.result.recordings.append(Recording(path, recorded.pcm, recorded.stopped_by))
        self.variables["record_samples"] = str(recorded.pcm.samples)
        self.variables["record_ms"] = str(recorded.pcm.samples * 1000 // self.record_rate)
        return status

    def _session_transfer(self, extension: str | None, dialplan: str | None = None, context: str | None = None) -> int:
        if not extension:
            raise ValueError("transfer needs an extension")
        with self._state:
            self.result.events.append(("transfer", extension, dialplan, context))
            if not self._ready():
                return 0
            self._transferred = True
            self.result.transfer = Transfer(extension, dialplan or "XML", context or "default")
        return 1

    def _session_execute(self, app: str | None, data: str | None = None) -> None:
        self.result.events.append(("execute", app, data))
        if app == "playback":
            self._session_streamFile(data)
        elif app == "sleep":
            self._session_sleep(int(data or 0))
        elif app == "set" and data and "=" in data:
            key, value = data.split("=", 1)
            self.variables[key] = value
        elif app == "hangup":
            self._session_hangup(data or "normal_clearing")
        else:
            raise ValueError(f"application {app!r} is not emulated")

    def _take_digits(self, max_digits: int, terminators: str) -> str:
        digits = ""
        while self._dtmf and len(digits) < max_digits:
            digit = self._dtmf.popleft()
            if digit in terminators:
                self.variables["read_terminator_used"] = digit
                break
            digits += digit
        return digits

    def _session_getDigits(
        self, max_digits: int, terminators: str | None, timeout: int, interdigit: int = 0, abs_timeout: int = 0
    ) -> str:
        self.result.events.append(("getDigits", max_digits))
        if not self._ready():
            return ""
        return self._take_digits(max_digits, terminators or "")

    def _session_playAndGetDigits(
        self,
        min_digits: int,
        max_digits: int,
        max_tries: int,
        timeout: int,
        terminators: str | None,
        audio_file: str | None,
        bad_input_file: str | None,
        regex: str | None,
        var_name: str | None = None,
        digit_timeout: int = 0,
        transfer_on_failure: str | None = None,
    ) -> str:
        for _ in range(max(max_tries, 1)):
            if not self._ready():
                return ""
            saved, self._input_callback = self._input_callback, None
            if audio_file:
                self._session_streamFile(audio_file)
            self._input_callback = saved
            action = self._caller_action("record")
            if isinstance(action, Press):
                self._dtmf.extend(action.digits)
            elif isinstance(action, HangUp):
                self._caller_hangs_up(action.cause)
                return ""
            digits = self._take_digits(max_digits, terminators or "")
            if len(digits) >= min_digits and (not regex or re.fullmatch(regex, digits)):
                if var_name:
                    self.variables[var_name] = digits
                return digits
            if bad_input_file:
                self._session_streamFile(bad_input_file)
        if transfer_on_failure:
            parts = transfer_on_failure.split()
            self._session_transfer(parts[0], *parts[1:3])
        return ""

    def _session_setInputCallback(self, function: str | None, argument: str | None = None) -> None:
        if not function:
            raise ValueError("setInputCallback needs the name of a global function")
        self._input_callback = (function, argument or None)

    def _session_unsetInputCallback(self) -> None:
        self._input_callback = None

    def _session_flushDigits(self) -> int:
        self._dtmf.clear()
        return 1

    def _session_flushEvents(self) -> int:
        return 1

    def _session_consoleLog(self, level: str | None, message: str | None) -> None:
        self._fs_consoleLog(level, message)

    # -- freeswitch.* and API ----------------------------------------------------------------------------

    def _fs_consoleLog(self, level: str | None, message: str | None) -> None:
        name = (level or "").lower()
        if name not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        self.result.log.append((name, message or ""))

    def _fs_consoleCleanLog(self, message: str | None) -> None:
        self.result.log.append(("console", message or ""))

    def _fs_msleep(self, ms: int) -> None:
        """Blocks the script's thread, as in FreeSWITCH: no media is read meanwhile (a stream gets nothing)."""
        self.result.events.append(("msleep", ms))
        time.sleep(max(ms, 0) / 1000)

    def _fs_getGlobalVariable(self, name: str | None) -> str | None:
        return self.global_variables.get(name or "")

    def _api_execute(self, command: str | None, argument: str | None = None) -> bytes | str:
        self.result.events.append(("api", command))
        if command == "curl" and self.curl is not None:
            return self.curl.api(argument)
        if command == "uuid_audio_stream" and self.audio_stream_loaded:
            return self._audio_stream(argument or "")
        return f"-ERR {command} Command not found!\n"

    # -- mod_audio_stream --------------------------------------------------------------------------------

    def _audio_stream(self, line: str) -> str:
        """`<uuid> start <url> <mix> [rate] [metadata]` (the metadata keeps the rest of the line), `stop [text]`,
        `send_text <text>`: answered at once; the connection and its outcome come later, as events."""
        words = line.split(" ", 5)
        if len(words) < 2 or words[0] != self.uuid:
            return STREAM_FAILED  # no such channel (this simulator has one)
        command, stream = words[1], self.stream
        open_stream = stream if stream is not None and not stream.closed.is_set() else None
        if command == "start":
            if len(words) < 4 or open_stream is not None or not words[2].startswith(("ws://", "wss://")):
                return STREAM_FAILED
            if words[3] != "mono":
                raise ValueError(f"uuid_audio_stream {words[3]} is not emulated (only mono)")
            rate = _stream_rate(words[4] if len(words) > 4 else "8k")
            if rate is None:
                return STREAM_FAILED
            self._in_loop(self._open_stream(words[2], rate, words[5] if len(words) > 5 else ""))
            return STREAM_OK
        if open_stream is None:
            return STREAM_FAILED
        text = line.split(" ", 2)[2] if len(words) > 2 else ""
        if command == "stop":
            self._in_loop(open_stream.stop(text or None))
            return STREAM_OK
        if command == "send_text" and text:
            self._in_loop(open_stream.send_text(_first_token(text)))
            return STREAM_OK
        raise ValueError(f"uuid_audio_stream {command} is not emulated")

    async def _open_stream(self, url: str, rate: int, metadata: str) -> None:
        stream = SimulatedCall(
            "",
            self.variables.get("domain_uuid", ""),
            self.uuid,
            sample_rate=rate,
            metadata=metadata or None,
            send_metadata=bool(metadata),
            mode=self._stream_mode,
            switch=self.switch,
            temp_dir=self._temp_dir,
            stream_url=url,
            headers=self._extra_headers(),
            as_channel=False,
            driven=True,
        )
        self.streams.append(stream)
        await stream.start()
        self._stream_made.set()

    def _extra_headers(self) -> dict[str, str]:
        """`STREAM_EXTRA_HEADERS`, a JSON object of strings; anything else adds no header."""
        try:
            headers = json.loads(self.variables.get("STREAM_EXTRA_HEADERS") or "{}")
        except ValueError:
            return {}
        if not isinstance(headers, dict):
            return {}
        return {str(k): v for k, v in headers.items() if isinstance(v, str)}

    def _end_streams(self, *, wait: bool = True) -> None:
        """The call ends (or leaves this simulation): the module closes what is still open; after a transfer
        the server is given `TRANSFER_GRACE_S` to close it itself, as it does once the call has moved on."""
        if not self.streams:
            return

        async def end(stream: SimulatedCall) -> None:
            if self._transferred and self._up:
                with contextlib.suppress(TimeoutError):
                    await stream.wait_closed(TRANSFER_GRACE_S)
            await stream.hang_up()

        for stream in list(self.streams):
            if wait:
                self._in_loop(end(stream))
            else:
                asyncio.run_coroutine_threadsafe(stream.hang_up(), self._event_loop())

    # -- the loop the switch and the streams run on ------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._own_loop = _LoopThread()
            self._loop = self._own_loop.loop
        return self._loop

    def _in_loop(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._event_loop()).result(timeout_s)

    def _in_loop_soon(self, function: Callable[[], Any]) -> None:
        """`function` in the loop's thread (at once when there is no loop: then nothing else runs)."""
        if self._loop is None:
            function()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(function)

    # -- freeswitch.EventConsumer and its events -----------------------------------------------------------

    def _fs_EventConsumer(self, event_name: str | None = None, subclass: str | None = "", length: int = 5000) -> int:
        consumer = _Consumer(max(1, length))
        handle = len(self._consumers) + 1
        self._consumers[handle] = consumer
        self._unlisten.append(self.switch.listen(consumer.offer))
        if event_name:
            self._consumer_bind(consumer, event_name, subclass)
        return handle

    def _consumer_bind(self, consumer: _Consumer, event_name: str | None, subclass: str | None = "") -> int:
        if event_name not in EVENT_NAMES:
            raise ValueError(f"EventConsumer: event {event_name!r} is not emulated")
        with consumer.arrived:
            consumer.bindings.add((event_name, subclass or ""))
        return 1

    def _consumer_pop(self, consumer: _Consumer, block: int = 0, timeout: int = 0) -> int | None:
        event = consumer.take(bool(block), timeout)
        if event is None:
            return None
        handle = len(self._event_objects) + 1
        self._event_objects[handle] = event
        return handle

    def _consumer_cleanup(self, consumer: _Consumer) -> None:
        with consumer.arrived:
            consumer.bindings.clear()
            consumer.queue.clear()

    def _event_getHeader(self, event: EslEvent, name: str | None) -> str | None:
        return event.headers.get(name or "")

    def _event_getBody(self, event: EslEvent) -> str | None:
        return event.body or None

    def _event_getType(self, event: EslEvent) -> str:
        return event.name

    def _event_serialize(self, event: EslEvent, format: str | None = None) -> str:
        if format == "json":
            return json.dumps({**event.headers, **({"_body": event.body} if event.body else {})})
        lines = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in event.headers.items())
        return lines + (f"Content-Length: {len(event.body.encode())}\n\n{event.body}" if event.body else "")

    def _api_executeString(self, line: str | None) -> bytes | str:
        command, _, argument = (line or "").partition(" ")
        return self._api_execute(command, argument or None)

    def _api_getTime(self) -> str:
        return "0"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _stream_rate(word: str) -> int | None:
    """`8k`, `16k`, or an integer that is a multiple of 8000, as mod_audio_stream takes it."""
    if word in STREAM_RATES:
        return STREAM_RATES[word]
    return int(word) if word.isdigit() and int(word) > 0 and int(word) % 8000 == 0 else None


def _first_token(text: str) -> str:
    """What `send_text` sends: its first token, or all of a text quoted with '…'."""
    if len(text) >= 2 and text[0] == "'" and "'" in text[1:]:
        return text[1 : text.index("'", 1)]
    return text.split(" ", 1)[0]
