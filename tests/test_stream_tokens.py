"""Per-domain bridge tokens: derived from `bridge.token_secret`, each opens its own domain's streams only; an
explicit `domain_tokens` entry replaces a domain's derived token; `auth_token` stays valid for every domain."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from secretary.access.stream_tokens import accepted_tokens, derive_domain_token, token_for_dialplan
from secretary.fusionpbx.dialplan import DialplanRequest, build_xml
from secretary.settings import BridgeSettings, Settings
from secretary.speech.local_engines import LocalModels
from tests.support import databases
from tests.support.bridge import ACME, live_bridge
from tests.test_bridge_server import closed_with, echoed, open_stream

pytestmark = pytest.mark.timeout(60)
SECRET = "0123456789abcdef0123456789abcdef-operator"


def test_a_derived_token_is_the_domains_own_and_fits_a_dialplan() -> None:
    acme = derive_domain_token(SECRET, uuid.UUID(ACME))
    assert acme == derive_domain_token(SECRET, uuid.UUID(ACME))  # nothing stored: derived again at the bridge
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", acme)
    assert acme != derive_domain_token(SECRET, uuid.UUID(databases.GLOBEX))
    assert acme != derive_domain_token(SECRET + "x", uuid.UUID(ACME))
    assert SECRET not in acme
    xml = build_xml(DialplanRequest(uuid.UUID(ACME), "acme.example.com", "5000", "realtime", "1001", bridge_token=acme))
    assert acme in xml and SECRET not in xml


def test_what_a_dialplan_carries_and_what_the_bridge_accepts() -> None:
    domain = uuid.UUID(ACME)
    derived = derive_domain_token(SECRET, domain)
    only_shared = BridgeSettings(auth_token="shared-token")
    assert token_for_dialplan(only_shared, domain).scope == "every domain"
    per_domain = BridgeSettings(auth_token="shared-token", token_secret=SECRET)
    assert token_for_dialplan(per_domain, domain).value == derived  # the domain's own, never the shared one
    assert accepted_tokens(per_domain, domain) == ["shared-token", derived]
    rotated = BridgeSettings(token_secret=SECRET, domain_tokens={ACME: "rotated-acme"})
    assert token_for_dialplan(rotated, domain).value == "rotated-acme"
    assert accepted_tokens(rotated, domain) == ["rotated-acme"]  # the derived one no longer opens acme
    assert accepted_tokens(rotated, uuid.UUID(databases.GLOBEX)) == [
        derive_domain_token(SECRET, uuid.UUID(databases.GLOBEX))
    ]
    assert token_for_dialplan(BridgeSettings(), domain).scope == "none"
    assert BridgeSettings(auth_token="", token_secret="").auth_token is None  # an empty .env line is unset
    with pytest.raises(ValidationError, match="32 characters"):
        BridgeSettings(token_secret="short")


async def test_the_bridge_takes_a_derived_token_for_its_own_domain_only(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    acme_token = derive_domain_token(SECRET, uuid.UUID(ACME))
    tokens = {"auth_token": "deploy-secret", "token_secret": SECRET, "domain_tokens": {databases.GLOBEX: "g-only"}}
    async with live_bridge(make_settings, models, with_esl=False, engine="echo", **tokens) as bridge:
        refused = [
            (ACME, SECRET),  # the secret itself is no token
            (ACME, derive_domain_token("another-secret-of-32-characters-or-more", uuid.UUID(ACME))),
            (databases.GLOBEX, acme_token),  # acme's token names another domain's streams
            (str(uuid.uuid4()), acme_token),
            (databases.GLOBEX, derive_domain_token(SECRET, uuid.UUID(databases.GLOBEX))),  # replaced by g-only
        ]
        for domain, token in refused:
            ws = await open_stream(bridge, domain=domain, token=token)
            code, reason = await closed_with(ws)
            assert code == 1008 and "unauthorized" in reason, (domain, token)
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0
        for token in (acme_token, "deploy-secret"):
            ws = await open_stream(bridge, token=token)
            await ws.send('{"sample_rate":8000}')
            await echoed(ws)
            await ws.close()
