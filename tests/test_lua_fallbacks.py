"""Everything that can go wrong around `secretary_ai.lua`, and the one way it always ends: the caller hears
the fallback prompt and is transferred to the front desk, with no Lua error. Also the caller's side of
things going differently: hanging up mid-call, leaving a message, pressing keys, saying nothing; and the
FreeSWITCH the script runs on: stock or FusionPBX's Lua path, each JSON codec."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from freeswitch.caller import HangUp, Press, Run, Say, Silence
from freeswitch.lua_sim import LUA_DIR, LuaPath, Transfer
from secretary.calls.prompts import ENGLISH
from secretary.settings import Settings
from secretary.speech.audio import wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support.databases import ACME
from tests.support.faulty_front import Fault, Route, faulty_front
from tests.support.live_service import live_ivr_service
from tests.support.lua_calls import (
    ACME_NAME,
    FALLBACK_PROMPT_TEXT,
    acme_call,
    assert_clean,
    assert_fell_back,
    reply,
    routes,
    write_fallback_prompt,
)
from tests.support.speech import Speech
from tests.support.tcp_proxy import tcp_proxy_for

HELLO = "Hello there."
RECORD_LIMITS = {"max_seconds": 15, "silence_threshold": 300, "silence_seconds": 2}


@pytest.fixture(scope="module")
def fallback_prompt(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fallback_prompt(wav_bytes(speech.say(FALLBACK_PROMPT_TEXT)), tmp_path_factory.mktemp("sounds"))


@pytest.fixture(scope="module")
def service(models: LocalModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The real service with the embedded defaults (YAML secretaries, memory state, file records), shared by
    the tests of this module: each call has its own uuid, records and spool folder."""
    root = tmp_path_factory.mktemp("service")
    settings = Settings(
        database_url=None,
        redis_url=None,
        secretaries_file=EXAMPLE_SECRETARIES,
        data_dir=root / "data",
        spool={"dir": root / "spool"},
        config_cache_s=0,
        dependency_timeout_s=10.0,
    )
    with live_ivr_service(settings, models) as (url, _runtime):
        yield url, settings


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def saved_record(settings: Settings, call_uuid: str) -> dict[str, Any]:
    return json.loads((settings.data_dir / "calls" / ACME / f"{call_uuid}.json").read_text())


def end_body(result: Any) -> dict[str, Any]:
    """What the script told the service at /end."""
    return dict(json.loads(result.exchanges[-1].request_body))


# -- the service is unreachable or answers badly ---------------------------------------------------------


@pytest.mark.parametrize("lua_version", ["lua52", "lua53", "lua54"])
def test_unreachable_service(fallback_prompt: Path, lua_version: str) -> None:
    result = acme_call(closed_port_url(), [], fallback_prompt, lua_version=lua_version)
    assert_fell_back(result, fallback_prompt)
    assert routes(result) == [("start", 0)]  # nobody to tell the call ended: no /end
    assert result.answered


def test_no_fallback_destination_hangs_up_after_the_prompt(fallback_prompt: Path) -> None:
    result = acme_call(closed_port_url(), [], fallback_prompt, voiceai_fallback="")
    assert_clean(result)
    assert result.played[-1].path == str(fallback_prompt) and result.transfer is None
    assert (result.hung_up_by, result.hangup_cause) == ("script", "NORMAL_TEMPORARY_FAILURE")


@pytest.mark.parametrize(
    "fault",
    [
        Fault("start", "status", status=500),
        Fault("start", "status", status=503),
        Fault("start", "malformed"),
        Fault("start", "no_say"),
        Fault("start", "oversized"),
        Fault("start", "rewrite", changes={"record": {"file": "/tmp/x.wav", "max_seconds": "lots"}}),
    ],
    ids=["500", "503", "malformed-json", "no-say", "over-64000-bytes", "bad-record"],
)
def test_bad_reply_to_the_start(service: tuple[str, Settings], fallback_prompt: Path, fault: Fault) -> None:
    url, _settings = service
    with faulty_front(url, [fault]) as (front_url, _front):
        result = acme_call(front_url, [], fallback_prompt)
    assert_fell_back(result, fallback_prompt)
    assert [name for name, _ in routes(result)] == ["start", "end"]  # the service answered: told it ended
    assert len(result.played) == 1  # nothing of the broken reply was played
    assert end_body(result)["ended_by"] == "fallback" and end_body(result)["destination"] == "1001"


def test_slow_service_times_out(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    url, _settings = service
    with faulty_front(url, [Fault("start", "slow", delay_s=2.5)]) as (front_url, _front):
        result = acme_call(front_url, [], fallback_prompt, voiceai_timeout="1")
    assert_fell_back(result, fallback_prompt)
    assert routes(result) == [("start", 0)]
    assert "no response" in result.log_text()


@pytest.mark.parametrize(
    ("route", "changes"),
    [
        ("turns", {"action": {"type": "transfer", "destination": "1002 XML evil", "context": ACME_NAME}}),
        ("start", {"action": {"type": "transfer", "destination": "1002", "context": "default'"}}),
        ("start", {"action": {"type": "conference"}}),
        ("start", {"say": {"text": "x", "audio_file": "/etc/passwd"}}),
        ("start", {"say": {"text": "x", "audio_file": "{absolute_codec_string=PCMU}/tmp/x.wav"}}),
        ("start", {"say": {"text": "x", "audio_file": "SPOOL/../../etc/hosts"}}),
        ("start", {"record": {"file": "/etc/cron.d/x", **RECORD_LIMITS}}),
    ],
    ids=[
        "space-in-extension",
        "quote-in-context",
        "unknown-action",
        "outside-spool",
        "file-vars",
        "dot-dot",
        "record-outside",
    ],
)
def test_untrusted_reply(
    service: tuple[str, Settings], fallback_prompt: Path, speech: Speech, route: Route, changes: dict[str, Any]
) -> None:
    """A compromised or buggy service can't make FreeSWITCH dial, play or write what it likes."""
    url, settings = service
    spool = settings.spool.dir.resolve()
    changes = json.loads(json.dumps(changes).replace("SPOOL", str(spool)))
    caller = [Say(speech.say(HELLO))] if route == "turns" else []
    with faulty_front(url, [Fault(route, "rewrite", changes=changes)]) as (front_url, _front):
        result = acme_call(front_url, caller, fallback_prompt, spool_dir=spool)
    assert_fell_back(result, fallback_prompt)
    expected = [("start", 200), ("turns", 200), ("end", 200)] if route == "turns" else [("start", 200), ("end", 200)]
    assert routes(result) == expected
    assert [p.path for p in result.played][len(caller) :] == [str(fallback_prompt)]
    assert not Path("/etc/cron.d/x").exists() and len(result.recordings) == len(caller)


@pytest.mark.parametrize(
    "fault", [Fault("turns", "status", status=500), Fault("turns", "no_say")], ids=["500", "no-say"]
)
def test_bad_reply_mid_call(service: tuple[str, Settings], fallback_prompt: Path, speech: Speech, fault: Fault) -> None:
    url, settings = service
    with faulty_front(url, [fault]) as (front_url, _front):
        result = acme_call(front_url, [Say(speech.say(HELLO))], fallback_prompt)
    assert_fell_back(result, fallback_prompt)
    assert [name for name, _ in routes(result)] == ["start", "turns", "end"]
    record = saved_record(settings, result.uuid)  # the call is still recorded, as the fallback it was
    assert (record["outcome"], record["outcome_destination"], record["hangup_cause"]) == ("fallback", "1001", None)
    assert end_body(result)["reason"].startswith(f"/api/v1/calls/{result.uuid}/turns: ")


# -- a dependency of the service goes down mid-call --------------------------------------------------------


def test_postgresql_down_mid_call(
    make_settings: Callable[..., Settings],
    fusionpbx_url: str,
    models: LocalModels,
    speech: Speech,
    fallback_prompt: Path,
) -> None:
    """The call goes on with the domain's last known config; its record waits in the spill folder."""
    with tcp_proxy_for(fusionpbx_url) as proxy:
        settings = make_settings(database_url=proxy.url_for(fusionpbx_url))
        with live_ivr_service(settings, models) as (url, _runtime):
            result = acme_call(url, [Run(proxy.cut), Say(speech.say(HELLO)), HangUp()], fallback_prompt)
    assert_clean(result)
    assert "falling back" not in result.log_text() and result.transfer is None
    assert routes(result) == [("start", 200), ("turns", 200), ("end", 200)]
    spilled = settings.data_dir / "calls-spill" / ACME / f"{result.uuid}.json"
    assert json.loads(spilled.read_text())["outcome"] == "caller_hangup"


def test_redis_down_mid_call(
    make_settings: Callable[..., Settings], redis_url: str, models: LocalModels, speech: Speech, fallback_prompt: Path
) -> None:
    with tcp_proxy_for(redis_url) as proxy:
        settings = make_settings(redis_url=proxy.url_for(redis_url))
        with live_ivr_service(settings, models) as (url, _runtime):
            result = acme_call(url, [Run(proxy.cut), Say(speech.say(HELLO))], fallback_prompt)
    assert_fell_back(result, fallback_prompt)
    assert routes(result) == [("start", 200), ("turns", 503), ("end", 503)]
    assert reply(result.exchanges[1])["error"]["code"] == "dependency_unavailable"


# -- the caller does something else ------------------------------------------------------------------------


def test_caller_hangs_up_mid_call(service: tuple[str, Settings], fallback_prompt: Path, speech: Speech) -> None:
    url, settings = service
    result = acme_call(url, [Say(speech.say("What are your opening hours?")), HangUp()], fallback_prompt)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("turns", 200), ("end", 200)]
    # FreeSWITCH tells the script no cause after the caller hung up ("NONE"): none is made up.
    assert end_body(result) == {"domain_uuid": ACME, "ended_by": "caller"}
    record = saved_record(settings, result.uuid)
    assert (record["outcome"], record["hangup_cause"], len(record["turns"])) == ("caller_hangup", None, 1)
    assert result.transfer is None and result.hung_up_by == "caller"


def test_caller_hangs_up_during_the_greeting(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    url, settings = service
    result = acme_call(url, [HangUp(during="prompt", cause="ORIGINATOR_CANCEL")], fallback_prompt)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("end", 200)]
    assert not result.played[0].completed and result.recordings == []
    record = saved_record(settings, result.uuid)
    assert (record["outcome"], record["hangup_cause"], record["turns"]) == ("caller_hangup", None, [])


def test_caller_leaves_a_message_and_hangs_up(
    service: tuple[str, Settings], fallback_prompt: Path, speech: Speech
) -> None:
    url, settings = service
    message = "This is Bob. Please call me back about the invoice."
    # the message's details (for sales, from the caller id's name and number) read back, then confirmed
    asks = [Say(speech.say("I would like to leave a message for sales.")), Say(speech.say("Yes."))]
    result = acme_call(url, [*asks, Say(speech.say(message), then_hang_up=True)], fallback_prompt)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("turns", 200), ("turns", 200), ("turns", 200), ("end", 200)]
    assert "a message for Sales from Test Caller" in reply(result.exchanges[1])["say"]["text"]
    assert reply(result.exchanges[2])["action"]["type"] == "take_message"
    message_spec = reply(result.exchanges[2])["record"]
    assert result.recordings[-1].path == message_spec["file"] and message_spec["max_seconds"] == 120
    record = saved_record(settings, result.uuid)
    assert record["outcome"] == "message"
    assert "invoice" in record["turns"][2]["caller_text"].lower()


@pytest.mark.parametrize("lua_version", ["lua52", "lua53", "lua54"])
def test_keys_during_the_recording_transfer(
    service: tuple[str, Settings], fallback_prompt: Path, lua_version: str
) -> None:
    url, _settings = service
    result = acme_call(url, [Press("1003")], fallback_prompt, lua_version=lua_version)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("dtmf", 200), ("end", 200)]
    assert json.loads(result.exchanges[1].request_body) == {"digits": "1003", "domain_uuid": ACME}
    assert result.transfer == Transfer("1003", "XML", ACME_NAME)
    assert end_body(result) == {"domain_uuid": ACME, "ended_by": "transfer"}


def test_keys_interrupt_the_greeting(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    url, _settings = service
    result = acme_call(url, [Press("0#", during="prompt")], fallback_prompt)
    assert_clean(result)
    assert not result.played[0].completed  # the key stopped the greeting
    assert result.recordings == []  # and nothing was recorded
    assert json.loads(result.exchanges[1].request_body)["digits"] == "0"
    assert result.transfer == Transfer("1001", "XML", ACME_NAME)  # 0: the operator


@pytest.mark.parametrize(
    ("lua_path", "freeswitch_json", "lunajson", "codec"),
    [
        ("stock", True, False, "freeswitch.JSON"),  # FreeSWITCH 1.10.12 as installed from its packages
        ("fusionpbx", True, True, "freeswitch.JSON"),  # FusionPBX on 1.10.12: FreeSWITCH's own still first
        ("fusionpbx", False, True, "lunajson"),  # FusionPBX on a mod_lua without freeswitch.JSON
        ("stock", False, False, "voiceai.json"),
    ],
)
def test_a_call_works_with_each_json_codec(
    service: tuple[str, Settings],
    fallback_prompt: Path,
    speech: Speech,
    lua_path: LuaPath,
    freeswitch_json: bool,
    lunajson: bool,
    codec: str,
) -> None:
    url, settings = service
    caller = [Say(speech.say("What are your opening hours?")), Press("1002")]
    result = acme_call(
        url, caller, fallback_prompt, lua_path=lua_path, freeswitch_json=freeswitch_json, lunajson=lunajson
    )
    assert_clean(result)
    assert f"(json: {codec})" in result.log_text() and "falling back" not in result.log_text()
    assert routes(result) == [("start", 200), ("turns", 200), ("dtmf", 200), ("end", 200)]
    assert "Monday" in reply(result.exchanges[1])["say"]["text"]
    assert all(b"\n" not in e.request_body for e in result.exchanges)  # compact JSON, whichever codec
    assert result.transfer == Transfer("1002", "XML", ACME_NAME)
    assert saved_record(settings, result.uuid)["outcome"] == "transfer"


# -- the script on the FreeSWITCH it finds ----------------------------------------------------------------


def lonely_script(folder: Path) -> Path:
    """The script without the voiceai/ folder that belongs next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(LUA_DIR / "secretary_ai.lua", folder / "secretary_ai.lua")
    return folder


@pytest.mark.parametrize("lua_version", ["lua52", "lua53", "lua54"])
def test_the_script_finds_its_modules_on_stock_freeswitch(
    service: tuple[str, Settings], fallback_prompt: Path, lua_version: str
) -> None:
    """Stock lua.conf.xml leaves the script directory off package.path: the script puts its own folder there."""
    url, _settings = service
    result = acme_call(url, [Press("1004")], fallback_prompt, lua_version=lua_version, freeswitch_json=False)
    assert_clean(result)
    assert result.transfer == Transfer("1004", "XML", ACME_NAME)


def test_the_script_finds_its_modules_through_script_dir(
    service: tuple[str, Settings], fallback_prompt: Path, tmp_path: Path
) -> None:
    url, _settings = service
    elsewhere = lonely_script(tmp_path / "elsewhere")
    result = acme_call(
        url, [Press("1004")], fallback_prompt, script_dir=elsewhere, global_variables={"script_dir": str(LUA_DIR)}
    )
    assert_clean(result)
    assert result.transfer == Transfer("1004", "XML", ACME_NAME)


@pytest.mark.parametrize("lua_path", ["stock", "fusionpbx"])
def test_without_its_modules_the_script_still_falls_back(
    service: tuple[str, Settings], fallback_prompt: Path, tmp_path: Path, lua_path: LuaPath
) -> None:
    url, _settings = service
    result = acme_call(url, [], fallback_prompt, script_dir=lonely_script(tmp_path / "scripts"), lua_path=lua_path)
    assert_fell_back(result, fallback_prompt)
    assert "module 'voiceai.http' not found" in result.log_text()
    assert result.exchanges == []  # nothing to talk to the service with


def test_a_recording_folder_freeswitch_cant_open_falls_back(
    service: tuple[str, Settings], fallback_prompt: Path
) -> None:
    """recordFile into it would hang the call up (DESTINATION_OUT_OF_ORDER): the script tries the file first."""
    url, settings = service
    spool = settings.spool.dir.resolve()
    target = spool / "in" / "no-such-folder" / "turn-001.wav"
    rewrite = Fault("start", "rewrite", changes={"record": {"file": str(target), **RECORD_LIMITS}})
    with faulty_front(url, [rewrite]) as (front_url, _front):
        result = acme_call(front_url, [], fallback_prompt, spool_dir=spool)
    assert_fell_back(result, fallback_prompt)
    assert result.hung_up_by is None and result.played_paths() == [str(fallback_prompt)]
    assert "the recording can't be written to" in end_body(result)["reason"]


# -- a caller who says nothing -----------------------------------------------------------------------------


def test_a_silent_caller_is_asked_again_then_hung_up(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    """No audio arrives: FreeSWITCH records a bare WAV header. That is no input, not a failure."""
    url, settings = service
    result = acme_call(url, [Silence(), Silence()], fallback_prompt)
    assert_clean(result)
    assert "falling back" not in result.log_text() and result.transfer is None
    assert [len(Path(r.path).read_bytes()) for r in result.recordings] == [44, 44]
    assert routes(result) == [("start", 200), ("turns", 200), ("turns", 200), ("end", 200)]
    asked, goodbye = reply(result.exchanges[1]), reply(result.exchanges[2])
    assert (asked["say"]["text"], asked["action"]["type"]) == (ENGLISH.still_there, "continue")
    assert (goodbye["say"]["text"], goodbye["action"]["type"]) == (ENGLISH.nobody_there, "hangup")
    assert result.played_paths()[1:] == [asked["say"]["audio_file"], goodbye["say"]["audio_file"]]
    assert (result.hung_up_by, result.hangup_cause) == ("script", "NORMAL_CLEARING")
    assert end_body(result) == {"domain_uuid": ACME, "ended_by": "hangup", "hangup_cause": "NORMAL_CLEARING"}
    record = saved_record(settings, result.uuid)
    assert (record["outcome"], record["hangup_cause"]) == ("caller_silent", "NORMAL_CLEARING")


def test_tenant_from_domain_uuid_only(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    """FusionPBX always sets domain_uuid; without domain_name the transfer context comes from the reply."""
    url, _settings = service
    result = acme_call(url, [Press("1004")], fallback_prompt, domain_name="")
    assert_clean(result)
    assert json.loads(result.exchanges[0].request_body)["domain_uuid"] == ACME
    assert result.transfer == Transfer("1004", "XML", ACME_NAME)


def test_another_tenants_domain_is_refused(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    """A dialplan pinned to a domain the service doesn't serve: the call falls back, nothing is started."""
    url, _settings = service
    result = acme_call(
        url, [], fallback_prompt, domain_uuid="d0000000-0009-4000-8000-000000000009", domain_name="nobody.example.com"
    )
    assert_clean(result)
    assert routes(result) == [("start", 404), ("end", 404)]
    assert result.played[-1].path == str(fallback_prompt)
    assert result.transfer == Transfer("1001", "XML", "nobody.example.com")
