"""The FreeSWITCH Lua simulator itself: strict like the SWIG bindings, and recording like FreeSWITCH does."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from freeswitch.caller import HangUp, Press, Run, Say, Silence, record_like_freeswitch
from freeswitch.lua_sim import LUNAJSON_FILE, FreeSwitchSim
from secretary.speech.audio import Pcm, silence, wav_bytes


def tone(seconds: float, rate: int = 16000, amplitude: int = 6000) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return Pcm((np.sin(2 * np.pi * 440 * t) * amplitude).astype("<i2").tobytes(), rate)


def run_lua(tmp_path: Path, source: str, **options: object) -> FreeSwitchSim:
    (tmp_path / "case.lua").write_text(source)
    sim = FreeSwitchSim(script_dir=tmp_path, **options)  # type: ignore[arg-type]
    sim.run("case.lua")
    return sim


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("session:playback('x.wav')", "CoreSession has no method or field 'playback'"),
        ("session.answer()", "Error in CoreSession::answer (arg 1), expected 'CoreSession *' got 'no value'"),
        ("session:streamFile()", "Error in CoreSession::streamFile expected 1..2 args, got 0"),
        ("session:recordFile('/tmp/x.wav', 10, 200, 2, 5)", "Error in CoreSession::recordFile expected 1..4 args"),
        ("session:recordFile('/tmp/x.wav', 'ten')", "(arg 3), expected 'int' got 'string'"),
        ("session:transfer({})", "(arg 2), expected 'char *' got 'table'"),
        ("session:sleep(true)", "(arg 2), expected 'int' got 'boolean'"),
        ("freeswitch.API():execute()", "Error in API::execute expected 1..2 args, got 0"),
        ("freeswitch.bridge()", "freeswitch.bridge is not emulated"),
        ("freeswitch.consoleLog('loud', 'x')", "unknown log level 'loud'"),
        ("session:hangup('BECAUSE')", "unknown hangup cause 'BECAUSE'"),
        ("os.execute('ls')", "os.execute is not allowed"),
        ("io.popen('ls')", "io.popen is not allowed"),
        ("session.extra = 1", "cannot set CoreSession.extra"),
        ("freeswitch.EventConsumer('CUSTOM').pop()", "Error in EventConsumer::pop (arg 1), expected 'EventConsumer *'"),
        ("freeswitch.EventConsumer('CUSTOM'):pop('soon')", "(arg 2), expected 'int' got 'string'"),
        ("freeswitch.EventConsumer('NO_SUCH_EVENT')", "event 'NO_SUCH_EVENT' is not emulated"),
        ("freeswitch.EventConsumer('CUSTOM'):subscribe()", "EventConsumer has no method or field 'subscribe'"),
        (
            "freeswitch.API():execute('uuid_audio_stream', session:get_uuid() .. ' start ws://x/ stereo')",
            "uuid_audio_stream stereo is not emulated",
        ),
    ],
)
def test_mistakes_raise_like_the_bindings(tmp_path: Path, line: str, complaint: str) -> None:
    sim = run_lua(tmp_path, line)
    assert sim.result.lua_error is not None and complaint in sim.result.lua_error
    assert any(complaint in violation for violation in sim.result.violations)


def test_swig_conversions_are_accepted(tmp_path: Path) -> None:
    source = """
    assert(session:getVariable(123) == "numeric-name")
    assert(session:sleep("250") == 1)
    assert(session:getVariable("nothing") == nil)
    session:setVariable("k", 5)
    assert(session:getVariable("k") == "5")
    assert(session:hangupCause() == "NONE")
    """
    sim = run_lua(tmp_path, source, variables={"123": "numeric-name"})
    assert sim.result.lua_error is None and sim.result.violations == []


def test_record_file_writes_telephone_audio_and_stops_on_silence(tmp_path: Path) -> None:
    target = tmp_path / "turn.wav"
    source = f"""
    local ok = session:recordFile("{target}", 15, 300, 2)
    freeswitch.consoleLog("info", ok .. " " .. session:getVariable("silence_hits_exhausted"))
    """
    sim = run_lua(tmp_path, source, caller=[Say(tone(1.0) + silence(0.5, 16000) + tone(0.5))])
    assert sim.result.log == [("info", "1 true")]
    with wave.open(str(target)) as recorded:
        assert (recorded.getframerate(), recorded.getsampwidth(), recorded.getnchannels()) == (8000, 2, 1)
        seconds = recorded.getnframes() / 8000
    # 2 s of speech with a short pause, then 2 s of silence detection: the pause did not end it.
    assert 3.9 <= seconds <= 4.1
    assert sim.result.recordings[0].stopped_by == "silence"


def test_record_time_limit_and_threshold_semantics() -> None:
    long_speech = tone(5.0)
    cut = record_like_freeswitch(long_speech, 8000, 2, 300, 2, hang_up_after=False)
    assert cut.stopped_by == "time_limit" and cut.pcm.duration_s == pytest.approx(2.0)
    quiet = record_like_freeswitch(tone(2.0, amplitude=200), 8000, 10, 300, 1, hang_up_after=False)
    assert quiet.stopped_by == "silence" and quiet.pcm.duration_s == pytest.approx(0.98, abs=0.03)
    wideband = record_like_freeswitch(tone(1.0), 16000, 10, 300, 1, hang_up_after=False)
    assert wideband.pcm.sample_rate == 16000 and wideband.pcm.duration_s == pytest.approx(1.98, abs=0.03)


@pytest.mark.parametrize("folder", ["nowhere", "a-file"])
def test_record_into_a_folder_freeswitch_cant_open_hangs_the_call_up(tmp_path: Path, folder: str) -> None:
    """switch_ivr_record_file hangs up with DESTINATION_OUT_OF_ORDER when the file does not open."""
    (tmp_path / "a-file").write_bytes(b"")
    target = tmp_path / folder / "turn.wav"
    source = f"""
    assert(session:recordFile("{target}", 5, 300, 2) == 0)
    assert(not session:ready())
    """
    sim = run_lua(tmp_path, source, caller=[Say(tone(1))])
    assert sim.result.lua_error is None and not target.exists()
    assert (sim.result.hung_up_by, sim.result.hangup_cause) == ("freeswitch", "DESTINATION_OUT_OF_ORDER")


def test_a_caller_from_whom_no_audio_arrives_leaves_a_bare_wav_header(tmp_path: Path) -> None:
    """No comfort noise is written, but the silence detector still ends the recording."""
    target = tmp_path / "turn.wav"
    source = f"""
    assert(session:recordFile("{target}", 15, 300, 2) == 1)
    assert(session:ready() and session:getVariable("silence_hits_exhausted") == "true")
    """
    sim = run_lua(tmp_path, source, caller=[Silence()])
    assert sim.result.lua_error is None, sim.result.lua_error
    assert len(target.read_bytes()) == 44 and sim.result.recordings[0].stopped_by == "silence"


def test_caller_hangs_up(tmp_path: Path) -> None:
    target = tmp_path / "turn.wav"
    source = f"""
    assert(session:ready())
    assert(session:recordFile("{target}", 5, 300, 2) == 1)  -- measured: 1 although the caller hung up
    assert(not session:ready())
    assert(session:hangupCause() == "NONE")  -- measured on FreeSWITCH 1.10.12
    assert(session:getVariable("hangup_cause") == nil)
    assert(session:streamFile("{target}") == 0)
    """
    sim = run_lua(tmp_path, source, caller=[HangUp()])
    assert sim.result.lua_error is None, sim.result.lua_error
    assert (sim.result.hung_up_by, sim.result.hangup_cause) == ("caller", "NORMAL_CLEARING")


def test_a_caller_who_hangs_up_mid_recording_leaves_the_partial_file_and_recordfile_returns_1(
    tmp_path: Path,
) -> None:
    target = tmp_path / "turn.wav"
    source = f"""
    assert(session:recordFile("{target}", 15, 300, 2) == 1)
    assert(not session:ready())
    """
    sim = run_lua(tmp_path, source, caller=[Say(tone(1.0), then_hang_up=True)])
    assert sim.result.lua_error is None, sim.result.lua_error
    with wave.open(str(target)) as recorded:
        assert recorded.getnframes() / 8000 == pytest.approx(1.0, abs=0.05)  # what was said before the hang-up
    assert sim.result.hung_up_by == "caller"


def test_a_caller_who_runs_out_of_things_to_say_hangs_up(tmp_path: Path) -> None:
    target = tmp_path / "turn.wav"
    sim = run_lua(tmp_path, f'session:recordFile("{target}", 5, 300, 2); assert(not session:ready())')
    assert sim.result.lua_error is None and sim.result.hung_up_by == "caller"
    assert len(target.read_bytes()) == 44  # nothing arrived before the hang-up


def test_the_script_is_loaded_by_its_path_with_stock_freeswitchs_lua_path(tmp_path: Path) -> None:
    """Stock lua.conf.xml has `script-directory` commented out: package.path is Lua's default, which does not
    hold the script directory; FreeSWITCH sets the global variable script_dir; mod_lua loads the script with
    luaL_loadfile(<script_dir>/<name>), so its chunk name is that path; argv[0] is the name as given."""
    source = """
    freeswitch.consoleLog("info", package.path)
    freeswitch.consoleLog("info", freeswitch.getGlobalVariable("script_dir"))
    freeswitch.consoleLog("info", debug.getinfo(1, "S").source)
    freeswitch.consoleLog("info", argv[0])
    """
    sim = run_lua(tmp_path, source)
    assert sim.result.lua_error is None, sim.result.lua_error
    path, script_dir, chunk, name = (message for _, message in sim.result.log)
    assert str(tmp_path) not in path and "?.lua" in path
    assert (script_dir, chunk, name) == (str(tmp_path), f"@{tmp_path}/case.lua", "case.lua")


def test_fusionpbx_lua_path_is_the_script_directory_alone(tmp_path: Path) -> None:
    """FusionPBX's lua.conf.xml: script-directory $${script_dir}/?.lua becomes LUA_PATH, without ';;'."""
    sim = run_lua(tmp_path, 'freeswitch.consoleLog("info", package.path)', lua_path="fusionpbx")
    assert sim.result.log == [("info", f"{tmp_path}/?.lua")]


@pytest.mark.parametrize(("lua_path", "found"), [("stock", False), ("fusionpbx", True)])
def test_lunajson_is_found_only_where_package_path_leads(tmp_path: Path, lua_path: str, found: bool) -> None:
    source = """
    local ok, lunajson = pcall(require, "resources.functions.lunajson")
    freeswitch.consoleLog("info", tostring(ok and lunajson.encode({ a = true })))
    """
    sim = run_lua(tmp_path, source, lunajson=True, lua_path=lua_path)
    assert sim.result.lua_error is None and sim.result.violations == []
    assert sim.result.log == [("info", '{"a":true}' if found else "false")]
    assert not (tmp_path / LUNAJSON_FILE).exists()  # emulated: nothing of FusionPBX's is copied


def test_freeswitch_json_is_absent_from_an_older_mod_lua(tmp_path: Path) -> None:
    source = 'freeswitch.consoleLog("info", tostring(freeswitch.JSON) .. " " .. type(freeswitch.API))'
    older = run_lua(tmp_path, source, freeswitch_json=False)
    assert older.result.log == [("info", "nil function")] and older.result.violations == []
    current = run_lua(tmp_path, source)
    assert current.result.log[0][1].startswith("function: ") and current.result.violations == []


def test_prompt_dtmf_goes_to_the_input_callback(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(wav_bytes(tone(1.0)))
    source = f"""
    seen = {{}}
    function on_key(s, kind, input)
        assert(s == session)
        seen[#seen + 1] = kind .. ":" .. input.digit
        return "break"
    end
    session:setInputCallback("on_key", "")
    assert(session:streamFile("{prompt}") == 0)  -- stopped by the key
    local rest = session:getDigits(5, "#", 2000, 1500)
    freeswitch.consoleLog("info", table.concat(seen, ",") .. " then " .. rest)
    assert(session:streamFile("{prompt}") == 1)
    """
    sim = run_lua(tmp_path, source, caller=[Press("123#9", during="prompt")])
    assert sim.result.lua_error is None, sim.result.lua_error
    assert sim.result.log == [("info", "dtmf:1 then 23")]
    assert [p.completed for p in sim.result.played] == [False, True]


def test_run_steps_happen_in_order(tmp_path: Path) -> None:
    happened: list[str] = []
    target = tmp_path / "turn.wav"
    sim = run_lua(
        tmp_path,
        f'session:recordFile("{target}", 5, 300, 2)',
        caller=[Run(lambda: happened.append("before")), Say(tone(0.5))],
    )
    assert happened == ["before"] and sim.result.recordings[0].stopped_by == "silence"


def test_transfer_ends_media(tmp_path: Path) -> None:
    source = """
    assert(session:transfer("1002", "XML", "acme.example.com") == 1)
    assert(not session:ready())
    assert(session:getState() == "CS_ROUTING")
    """
    sim = run_lua(tmp_path, source)
    assert sim.result.lua_error is None
    assert sim.result.transfer is not None and sim.result.transfer.extension == "1002"


def test_unknown_api_command_answers_like_freeswitch(tmp_path: Path) -> None:
    source = 'freeswitch.consoleLog("info", freeswitch.API():execute("curl", "http://127.0.0.1:1/ json"))'
    sim = run_lua(tmp_path, source, curl_loaded=False)
    assert sim.result.log == [("info", "-ERR curl Command not found!\n")]


def test_play_and_get_digits_and_execute(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.wav"
    prompt.write_bytes(wav_bytes(tone(0.5)))
    source = f"""
    local got = session:playAndGetDigits(1, 4, 3, 3000, "#", "{prompt}", "", "\\\\d+", "choice")
    freeswitch.consoleLog("info", got .. " " .. session:getVariable("choice"))
    session:execute("playback", "{prompt}")
    session:execute("set", "greeted=yes")
    assert(session:getVariable("greeted") == "yes")
    local ok, err = pcall(function() session:execute("system", "id") end)
    assert(not ok and string.find(err, "not emulated"))
    """
    sim = run_lua(tmp_path, source, caller=[Press("12#")], copy_played_to=tmp_path / "played")
    assert sim.result.lua_error is None, sim.result.lua_error
    assert sim.result.log == [("info", "12 12")]
    assert [p.path for p in sim.result.played] == [str(prompt), str(prompt)]
    assert sorted(p.name for p in (tmp_path / "played").iterdir()) == ["01-prompt.wav", "02-prompt.wav"]
