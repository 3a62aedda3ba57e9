"""Everything that can go wrong around `secretary_ai.lua`, and the one way it always ends: the caller hears
the fallback prompt and is transferred to the front desk, with no Lua error. Also the caller's side of
things going differently: hanging up mid-call, leaving a message, pressing keys."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from freeswitch.caller import HangUp, Press, Run, Say
from freeswitch.lua_sim import Transfer
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
        dependency_timeout_s=2.0,
    )
    with live_ivr_service(settings, models) as (url, _runtime):
        yield url, settings


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def saved_record(settings: Settings, call_uuid: str) -> dict[str, Any]:
    return json.loads((settings.data_dir / "calls" / ACME / f"{call_uuid}.json").read_text())


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
    assert saved_record(settings, result.uuid)["call_uuid"] == result.uuid  # the call is still recorded


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
    assert json.loads(result.exchanges[-1].request_body) == {"domain_uuid": ACME, "hangup_cause": "NORMAL_CLEARING"}
    record = saved_record(settings, result.uuid)
    assert (record["outcome"], record["hangup_cause"], len(record["turns"])) == ("caller_hangup", "NORMAL_CLEARING", 1)
    assert result.transfer is None and result.hung_up_by == "caller"


def test_caller_hangs_up_during_the_greeting(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    url, settings = service
    result = acme_call(url, [HangUp(during="prompt", cause="ORIGINATOR_CANCEL")], fallback_prompt)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("end", 200)]
    assert not result.played[0].completed and result.recordings == []
    record = saved_record(settings, result.uuid)
    assert (record["hangup_cause"], record["turns"]) == ("ORIGINATOR_CANCEL", [])


def test_caller_leaves_a_message_and_hangs_up(
    service: tuple[str, Settings], fallback_prompt: Path, speech: Speech
) -> None:
    url, settings = service
    message = "This is Bob. Please call me back about the invoice."
    caller = [Say(speech.say("I would like to leave a message.")), Say(speech.say(message), then_hang_up=True)]
    result = acme_call(url, caller, fallback_prompt)
    assert_clean(result)
    assert routes(result) == [("start", 200), ("turns", 200), ("turns", 200), ("end", 200)]
    assert reply(result.exchanges[1])["action"]["type"] == "take_message"
    message_spec = reply(result.exchanges[1])["record"]
    assert result.recordings[-1].path == message_spec["file"] and message_spec["max_seconds"] == 120
    record = saved_record(settings, result.uuid)
    assert record["outcome"] == "message"
    assert "invoice" in record["turns"][1]["caller_text"].lower()


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


def test_keys_interrupt_the_greeting(service: tuple[str, Settings], fallback_prompt: Path) -> None:
    url, _settings = service
    result = acme_call(url, [Press("0#", during="prompt")], fallback_prompt)
    assert_clean(result)
    assert not result.played[0].completed  # the key stopped the greeting
    assert result.recordings == []  # and nothing was recorded
    assert json.loads(result.exchanges[1].request_body)["digits"] == "0"
    assert result.transfer == Transfer("1001", "XML", ACME_NAME)  # 0: the operator


def test_fusionpbx_lunajson_is_preferred(service: tuple[str, Settings], fallback_prompt: Path, tmp_path: Path) -> None:
    """Where FusionPBX's `resources.functions.lunajson` is on the path, the script uses it. lunajson itself
    is not installed here; this stand-in has its interface and counts its use."""
    functions = tmp_path / "resources" / "functions"
    functions.mkdir(parents=True)
    (functions / "lunajson.lua").write_text(
        'local ours = require("voiceai.json")\n'
        "lunajson_calls = 0\n"
        "return {\n"
        "  encode = function(v) lunajson_calls = lunajson_calls + 1; return ours.encode(v) end,\n"
        "  decode = function(s) lunajson_calls = lunajson_calls + 1; return ours.decode(s) end,\n"
        "}\n"
    )
    url, _settings = service
    result = acme_call(url, [Press("1002")], fallback_prompt, extra_lua_paths=(tmp_path,))
    assert_clean(result)
    assert "(json: lunajson)" in result.log_text()
    assert result.transfer == Transfer("1002", "XML", ACME_NAME)


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
