"""Calls to the demo tenant through the real `secretary_ai.lua` in the FreeSWITCH simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from freeswitch.caller import CallerAction
from freeswitch.lua_sim import LUA_DIR, CallResult, FreeSwitchSim, LuaPath
from freeswitch.mod_curl import CurlExchange
from tests.support.databases import ACME

ACME_NAME = "acme.example.com"
FALLBACK = "1001"
FALLBACK_PROMPT_TEXT = "Please hold while we connect your call."


def acme_call(
    url: str,
    caller: list[CallerAction],
    fallback_prompt: Path,
    *,
    spool_dir: Path | None = None,
    lua_version: str = "lua53",
    global_variables: dict[str, str] | None = None,
    script_dir: Path = LUA_DIR,
    lua_path: LuaPath = "stock",
    freeswitch_json: bool = True,
    lunajson: bool = False,
    **variables: str,
) -> CallResult:
    """One call from extension 1000 to the acme secretary, as FusionPBX would route it; `global_variables`
    are what vars.xml sets; the rest picks the FreeSWITCH it runs on (see `FreeSwitchSim`)."""
    values = acme_variables(url, fallback_prompt, **variables)
    if spool_dir is not None:
        values["voiceai_spool_dir"] = str(spool_dir.resolve())
    sim = FreeSwitchSim(
        variables=values,
        global_variables=global_variables,
        caller=caller,
        lua_version=lua_version,
        script_dir=script_dir,
        lua_path=lua_path,
        freeswitch_json=freeswitch_json,
        lunajson=lunajson,
    )
    return sim.run("secretary_ai.lua")


def acme_variables(url: str, fallback_prompt: Path, **variables: str) -> dict[str, str]:
    """The channel of a call from extension 1000 to the acme secretary's extension (its dialplan's `set`s)."""
    return {
        "domain_uuid": ACME,
        "domain_name": ACME_NAME,
        "caller_id_number": "1000",
        "caller_id_name": "Test Caller",
        "destination_number": "5000",
        "voiceai_url": url,
        "voiceai_fallback": FALLBACK,
        "voiceai_fallback_prompt": str(fallback_prompt),
        "voiceai_timeout": "20",
        **variables,
    }


def reply(exchange: CurlExchange) -> Any:
    return json.loads(exchange.response_body or b"null")


def route(exchange: CurlExchange) -> str:
    path = exchange.url.split("/api/v1/calls", 1)[1]
    return path.rsplit("/", 1)[1] if path.count("/") > 1 else "start"


def routes(result: CallResult) -> list[tuple[str, int]]:
    return [(route(e), e.status) for e in result.exchanges]


def assert_clean(result: CallResult) -> None:
    """No Lua error, nothing the bindings would refuse."""
    assert result.lua_error is None, result.lua_error
    assert result.violations == [], result.violations


def assert_fell_back(result: CallResult, fallback_prompt: Path) -> None:
    """The caller heard the fallback prompt and went to the front desk, without a Lua error."""
    assert_clean(result)
    assert "falling back" in result.log_text()
    assert result.played and result.played[-1].path == str(fallback_prompt)
    assert result.played[-1].data is not None
    assert result.transfer is not None
    assert (result.transfer.extension, result.transfer.dialplan, result.transfer.context) == (
        FALLBACK,
        "XML",
        ACME_NAME,
    )


def write_fallback_prompt(pcm_wav: bytes, directory: Path) -> Path:
    """Stands in for FreeSWITCH's ivr/ivr-hold_connect_call.wav (the sound packages are not installed here)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ivr-hold_connect_call.wav"
    path.write_bytes(pcm_wav)
    return path
