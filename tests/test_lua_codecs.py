"""The JSON codecs a script finds on a real FreeSWITCH, as the simulator emulates them (`freeswitch.lua_json`),
and the order `voiceai.http` picks them in. The facts come from the sources: mod_lua's own test
(src/mod/languages/mod_lua/test/test_json.lua, FreeSWITCH 1.10.12), `freeswitch_lua.cpp` and cJSON 1.7.12 for
`freeswitch.JSON()`; FusionPBX's bundled lunajson for `resources.functions.lunajson`. No registry ships
lunajson (PyPI and npm have no such package), so its emulation is checked against what its code does."""

from __future__ import annotations

from pathlib import Path

import pytest

from freeswitch.lua_sim import LUA_DIR, FreeSwitchSim


def lua_lines(tmp_path: Path, source: str, **options: object) -> list[str]:
    """Runs `source` (with `show(x)` logging tostring(x)) and returns what it showed."""
    prelude = 'local function show(x) freeswitch.consoleLog("info", tostring(x)) end\n'
    (tmp_path / "case.lua").write_text(prelude + source)
    sim = FreeSwitchSim(script_dir=tmp_path, **options)  # type: ignore[arg-type]
    result = sim.run("case.lua")
    assert result.lua_error is None, result.lua_error
    assert result.violations == [], result.violations
    return [message for _, message in result.log]


# -- freeswitch.JSON() ---------------------------------------------------------------------------------------


def test_freeswitch_json_as_mod_luas_own_test_shows_it(tmp_path: Path) -> None:
    source = r"""
    local json = freeswitch.JSON()
    show(json:decode('{"a": "中文"}').a)
    local x = json:decode('{"a": "1", "b": 2, "c": true, "d": false, "e": [], "f": {}, "g": [1, 2, "3"], '
        .. '"h": {"a": 1}}')
    show(x.a) show(x.b == 2) show(x.c) show(x.d) show(next(x.e)) show(next(x.f)) show(#x.g) show(x.g[3]) show(x.h.a)
    x = json:decode('["a", "b", true, false, null]')
    show(x[1]) show(#x)
    show(json:decode('[]') ~= nil) show(json:decode('{}') ~= nil) show(json:decode('blah'))
    json:return_unformatted_json(true)
    show(json:encode({}))
    json:encode_empty_table_as_object(false)
    show(json:encode({}))
    show(json:encode({[1] = "a"}))
    show(json:encode({"a", "b", "c"}))
    show(json:encode({[3] = "c"}))
    show(json:encode({{name = "seven"}, {name="nine"}}))
    show(json:encode({{name = "中文"}, {["中文"]="也行"}}))
    local sn = json:decode(json:encode({s = "1001", n = 1002}))
    show(sn.s == "1001" and sn.n == 1002)
    """
    assert lua_lines(tmp_path, source) == [
        "中文",
        "1", "true", "true", "false", "nil", "nil", "3", "3", "1.0",
        "a", "4",
        "true", "true", "nil",
        "{}", "[]", '["a"]', '["a","b","c"]', '{"3":"c"}', '[{"name":"seven"},{"name":"nine"}]',
        '[{"name":"中文"},{"中文":"也行"}]',
        "true",
    ]  # fmt: skip


def test_freeswitch_json_decodes_like_cjson_and_mod_lua(tmp_path: Path) -> None:
    source = r"""
    local json = freeswitch.JSON()
    show(math.type(json:decode('{"n": 15}').n))            -- lua_pushnumber: always a float
    show(select("#", json:decode('{"a": ')))                -- a failed parse: no value at all
    show(next(json:decode('5')))                            -- a scalar document: an empty table
    show(next(json:decode('{"a": null}')))                  -- nulls are dropped
    local shifted = json:decode('[[1], 2, null, 3]')        -- and arrays in arrays; what follows moves up
    show(#shifted) show(shifted[1]) show(shifted[2])
    show(json:decode('{"a": 1} and then some').a)           -- cJSON_Parse ignores what follows
    show(json:decode('\239\187\191 {"bom": true}').bom)     -- a UTF-8 BOM is skipped
    show(json:decode('{"a": 1, "a": 2}').a)                 -- the last duplicate wins
    show(json:decode('{"a": "x\\u0000y"}').a)                -- strings end at their first NUL
    show(json:decode('{"a": "\\u00e9\\ud83d\\ude00"}').a)
    show(json:decode('{"a": "\\ud800"}'))                    -- a lone surrogate fails the whole document
    show(json:decode('{"a": "\\q"}'))
    show(json:decode('[1,]'))
    show(json:decode('{"a": 01}').a)                        -- strtod reads the digits cJSON copied
    show(json:decode(string.rep("[", 1000) .. string.rep("]", 1000)) ~= nil)
    show(json:decode(string.rep("[", 1001) .. string.rep("]", 1001)))
    """
    assert lua_lines(tmp_path, source) == [
        "float", "0", "nil", "nil", "2", "2.0", "3.0", "1.0", "true", "2.0", "x", "é😀", "nil", "nil", "nil",
        "1.0", "true", "nil",
    ]  # fmt: skip


def test_freeswitch_json_encodes_like_cjson_and_mod_lua(tmp_path: Path) -> None:
    source = r"""
    local json = freeswitch.JSON()
    show(json:encode({a = 1}))                              -- never initialised: formatted, as cJSON_Print
    show(json:encode({a = {1, 2}}))
    show(json:encode({a = {b = true}}))
    json:return_unformatted_json(true)
    show(json:encode({n = 0.1})) show(json:encode({n = 1/3})) show(json:encode({n = 2^53}))
    show(json:encode({n = 0/0})) show(json:encode({n = 1e300})) show(json:encode({n = -0.0}))
    show(json:encode({s = "q\"\\\1\n\tü"}))
    show(json:encode({1, 2, x = 3}))                        -- the first key is 1: every item is appended
    show(json:encode({["1"] = "x"}))                        -- a key that converts to 1 counts too
    show(json:encode({a = print}))                          -- functions are skipped
    show(json:encode({[true] = 1}))                         -- a key lua_tostring can't print is lost
    show(json:encode({a = {}}))
    """
    assert lua_lines(tmp_path, source) == [
        '{\n\t"a":\t1\n}',
        '{\n\t"a":\t[1, 2]\n}',
        '{\n\t"a":\t{\n\t\t"b":\ttrue\n\t}\n}',
        '{"n":0.1}', '{"n":0.33333333333333331}', '{"n":9007199254740992}',
        '{"n":null}', '{"n":1e+300}', '{"n":-0}',
        '{"s":"q\\"\\\\\\u0001\\n\\tü"}',
        "[1,2,3]", '["x"]', "{}", "{}", '{"a":{}}',
    ]  # fmt: skip


def test_freeswitch_json_misuse_is_refused_like_the_binding(tmp_path: Path) -> None:
    (tmp_path / "case.lua").write_text('local json = freeswitch.JSON(); json:encode("text")')
    result = FreeSwitchSim(script_dir=tmp_path).run("case.lua")
    assert result.lua_error is not None and "expected 'SWIGLUA_TABLE' got 'string'" in result.lua_error
    assert any("SWIGLUA_TABLE" in violation for violation in result.violations)


# -- FusionPBX's lunajson ------------------------------------------------------------------------------------


LUNAJSON = {"lunajson": True, "lua_path": "fusionpbx"}


def test_lunajson_decodes_strictly(tmp_path: Path) -> None:
    source = r"""
    local lunajson = require("resources.functions.lunajson")
    local function try(text)
        local ok, value = pcall(lunajson.decode, text)
        if ok then return value end
        return "error: " .. tostring(value)
    end
    local x = try('{"a": 1, "b": [1, null, 3], "c": null, "d": "\\u00e9\\ud83d\\ude00"}')
    show(math.type(x.a)) show(x.b[1]) show(x.b[2]) show(x.b[3]) show(x.c) show(x.d)
    show(try(' [0] ')[1]) show(try('[-0.5e1]')[1]) show(try('{"a" : true}').a)
    for _, text in ipairs({'{} x', '0', '1.', '[1,]', '"\\x"', '"\\ud800"', '\v{}', '{"a":1,}'}) do
        show(try(text))
    end
    """
    lines = lua_lines(tmp_path, source, **LUNAJSON)
    assert lines[:9] == ["float", "1.0", "nil", "3.0", "nil", "é😀", "0.0", "-5.0", "true"]
    errors = lines[9:]
    assert errors[0].endswith("json ended")
    assert [e.split(": ", 1)[0] for e in errors] == ["error"] * 8
    assert "invalid number" in errors[1] and "invalid number" in errors[2]  # a lone 0: lunajson looks past it
    assert "invalid value" in errors[3] and "invalid escape sequence" in errors[4]
    assert "invalid surrogate pair" in errors[5] and "invalid value" in errors[6]


def test_lunajson_encodes_arrays_by_their_first_item(tmp_path: Path) -> None:
    source = r"""
    local lunajson = require("resources.functions.lunajson")
    local function try(value)
        local ok, text = pcall(lunajson.encode, value)
        return ok and text or "error: " .. tostring(text)
    end
    show(try({1, 2, 3})) show(try({})) show(try({a = 0.1})) show(try({1, 2, x = 3})) show(try({1, nil, 3}))
    show(try("\1\"")) show(try(nil)) show(try(5)) show(try(true))
    local loop = {}
    loop.self = loop
    for _, value in ipairs({{[2] = 1}, {n = 0/0}, {n = math.huge}, loop, {f = print}}) do
        show(try(value))
    end
    """
    lines = lua_lines(tmp_path, source, **LUNAJSON)
    assert lines[:9] == [
        "[1,2,3]", "{}", '{"a":0.10000000000000001}', "[1,2]", "[1]", '"\\u0001\\""', "null", "5", "true",
    ]  # fmt: skip
    assert lines[9:] == [
        "error: non-string key",
        "error: invalid number",
        "error: invalid number",
        "error: loop detected",
        "error: invalid type value",
    ]


# -- which one the script uses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"lunajson": True, "lua_path": "fusionpbx"}, "freeswitch.JSON"),  # FreeSWITCH's own first
        ({"lunajson": True, "lua_path": "fusionpbx", "freeswitch_json": False}, "lunajson"),
        ({"lunajson": True, "freeswitch_json": False}, "voiceai.json"),  # lunajson exists but is off the path
        ({"freeswitch_json": False}, "voiceai.json"),
    ],
)
def test_the_json_module_selection_order(tmp_path: Path, options: dict[str, object], expected: str) -> None:
    source = f"""
    package.path = "{LUA_DIR}/?.lua;" .. package.path
    local http = require("voiceai.http")
    show(http.json_name)
    local decoded = http.json.decode(http.json.encode({{ say = {{ text = "hi" }}, n = 2 }}))
    show(decoded.say.text .. " " .. string.format("%d", decoded.n))
    show(pcall(http.json.decode, "not json"))
    """
    assert lua_lines(tmp_path, source, **options) == [expected, "hi 2", "false"]
