"""`secretary_ai.lua` and v1's shared secret, in real Lua 5.3 against the real service: the script sends the
secret FreeSWITCH's global variable `voiceai_secret` holds (vars.xml, FusionPBX's Variables page) with every
request, as mod_curl's `append_headers`; without it, or with a wrong one, the service refuses the call and the
caller goes to the front desk. The secret never reaches the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from freeswitch.caller import Press
from secretary.settings import Settings
from secretary.speech.audio import wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.support.live_service import live_ivr_service
from tests.support.lua_calls import (
    FALLBACK_PROMPT_TEXT,
    acme_call,
    assert_clean,
    assert_fell_back,
    routes,
    write_fallback_prompt,
)
from tests.support.speech import Speech

SECRET = "f00d-cafe_5ecret.for~lua+tests/="


@pytest.fixture(scope="module")
def fallback_prompt(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fallback_prompt(wav_bytes(speech.say(FALLBACK_PROMPT_TEXT)), tmp_path_factory.mktemp("sounds"))


@pytest.fixture
def guarded_service(make_settings: Callable[..., Settings], models: LocalModels) -> Iterator[str]:
    with live_ivr_service(make_settings(ivr={"shared_secret": SECRET}), models) as (url, _runtime):
        yield url


def test_the_script_sends_the_secret_with_every_request(guarded_service: str, fallback_prompt: Path) -> None:
    result = acme_call(guarded_service, [Press("0")], fallback_prompt, global_variables={"voiceai_secret": SECRET})
    assert_clean(result)
    assert routes(result) == [("start", 200), ("dtmf", 200), ("end", 200)]
    assert all(e.request_headers == {"X-VoiceAI-Secret": SECRET} for e in result.exchanges)
    assert result.transfer is not None and result.transfer.extension == "1001"
    assert "falling back" not in result.log_text() and SECRET not in result.log_text()


@pytest.mark.parametrize("global_variables", [{}, {"voiceai_secret": ""}, {"voiceai_secret": SECRET[::-1]}])
def test_without_the_right_secret_v1_refuses_and_the_caller_goes_to_the_front_desk(
    guarded_service: str, fallback_prompt: Path, global_variables: dict[str, str]
) -> None:
    result = acme_call(guarded_service, [Press("0")], fallback_prompt, global_variables=global_variables)
    assert_fell_back(result, fallback_prompt)
    assert routes(result) == [("start", 401), ("end", 401)]
    assert "HTTP 401 (unauthorized)" in result.log_text()
    assert SECRET not in result.log_text() and SECRET[::-1] not in result.log_text()


def test_a_secret_mod_curl_could_not_carry_is_never_sent(guarded_service: str, fallback_prompt: Path) -> None:
    bad = "two words' and a quote"
    result = acme_call(guarded_service, [], fallback_prompt, global_variables={"voiceai_secret": bad})
    assert_fell_back(result, fallback_prompt)
    assert result.exchanges == [] and bad not in result.log_text()
    assert "voiceai_secret is not" in result.log_text()
