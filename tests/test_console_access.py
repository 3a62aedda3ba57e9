"""Who gets into the console and what a session may do, over real HTTP: the FusionPBX app's PHP page mints a
token (run by php-cli) that the service accepts once, for that domain only, and a tampered, expired or replayed
one is refused; the session cookie's flags; CSRF on forms and on the page scripts' API calls; a revoked key
ends its sessions; a test call's stream URL is minted for the session's own domain only. The token's rules
themselves are checked on an injected clock."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from ivr_service.console.sessions import LoginTokens
from secretary.access.console_tokens import ConsoleTokenVerifier, TokenRefused, sign
from secretary.access.stream_tokens import valid_test_call_token
from secretary.db.database import Database
from secretary.fusionpbx.dialplan import APP_UUID
from secretary.settings import BridgeSettings
from secretary.speech.local_engines import LocalModels
from tests.support import admin_env, databases
from tests.support.admin_env import ACME, GLOBEX
from tests.support.console_env import FUSIONPBX_SECRET, UMBRELLA, ConsoleService, console_service

APP = Path(__file__).resolve().parents[1] / "fusionpbx" / "app" / "ai_secretary"
PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="needs Debian's php-cli (apt-get install php-cli)")
NOW = 1_800_000_000.0
NONCE = "0123456789abcdef0123"
BRIDGE_SECRET = "console-access-bridge-secret-" + "b" * 32
PUBLIC_BRIDGE = "wss://pbx.example.com/voiceai-bridge"


# -- the token's rules, on an injected clock -------------------------------------------------------------


def claims(**changes: object) -> dict[str, object]:
    return {"domain_uuid": str(ACME), "user": "alice", "scope": "domain", "exp": NOW + 60, "nonce": NONCE} | changes


def test_a_valid_token_grants_its_domain_once() -> None:
    verifier = ConsoleTokenVerifier("k" * 32, max_age_s=120)
    grant = verifier.verify(sign("k" * 32, claims()), NOW)
    assert (grant.user, grant.principal.domain_uuid, grant.principal.is_superadmin) == ("alice", ACME, False)
    assert grant.principal.key_uuid is None
    with pytest.raises(TokenRefused, match="already used"):
        verifier.verify(sign("k" * 32, claims()), NOW + 1)
    assert verifier.verify(sign("k" * 32, claims(nonce="f" * 20)), NOW).user == "alice"


@pytest.mark.parametrize(
    ("token_claims", "secret", "reason"),
    [
        (claims(exp=NOW), "k" * 32, "expired"),
        (claims(exp=NOW + 121), "k" * 32, "longer than"),
        (claims(), "another secret", "signature is wrong"),
        (claims(scope="owner"), "k" * 32, "scope"),
        (claims(domain_uuid="acme"), "k" * 32, "names no domain"),
        (claims(user=""), "k" * 32, "names no user"),
        (claims(nonce="short"), "k" * 32, "nonce"),
        (claims(exp="soon"), "k" * 32, "no expiry"),
    ],
)
def test_a_bad_token_is_refused_with_its_reason(token_claims: dict[str, object], secret: str, reason: str) -> None:
    with pytest.raises(TokenRefused, match=reason):
        ConsoleTokenVerifier("k" * 32, max_age_s=120).verify(sign(secret, token_claims), NOW)


def test_a_token_whose_payload_was_changed_is_refused() -> None:
    version, body, signature = sign("k" * 32, claims()).split(".")
    forged = sign("k" * 32, claims(domain_uuid=str(GLOBEX))).split(".")[1]
    for token in (f"{version}.{forged}.{signature}", f"v2.{body}.{signature}", f"{version}.{body}", "x" * 3000):
        with pytest.raises(TokenRefused):
            ConsoleTokenVerifier("k" * 32, max_age_s=120).verify(token, NOW)


# -- the FusionPBX app's PHP ---------------------------------------------------------------------------------


@needs_php
@pytest.mark.parametrize("path", sorted(APP.rglob("*.php")), ids=lambda p: str(p.relative_to(APP)))
def test_every_php_file_of_the_app_parses(path: Path) -> None:
    assert PHP is not None
    result = subprocess.run([PHP, "-l", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def php_token(domain: str, user: str, scope: str, lifetime: int, secret: str = FUSIONPBX_SECRET) -> str:
    """A token as the app's page mints it, by its own PHP function run with php-cli."""
    assert PHP is not None
    code = (
        f"require {json.dumps(str(APP / 'resources/functions/console_token.php'))};"
        "echo ai_secretary_console_token($argv[1], $argv[2], $argv[3], $argv[4], (int) $argv[5], time());"
    )
    result = subprocess.run(
        [PHP, "-r", code, "--", secret, domain, user, scope, str(lifetime)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_the_app_page_checks_the_permission_and_uses_fusionpbx_session() -> None:
    page = (APP / "ai_secretary.php").read_text()
    assert "permission_exists('ai_secretary_view')" in page
    assert "$_SESSION['domain_uuid']" in page and "$_SESSION['username']" in page
    config = (APP / "app_config.php").read_text()
    for block in ("['destinations']", "['permissions']", "['default_settings']", "['uuid']"):
        assert block in config


# -- over HTTP ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(models: LocalModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleService]:
    name, url = asyncio.run(admin_env.prepare("5.5"))
    try:
        bridge = {"token_secret": BRIDGE_SECRET, "public_url": PUBLIC_BRIDGE}
        with console_service(url, tmp_path_factory.mktemp("console-access"), models, bridge=bridge) as served:
            yield served
    finally:
        asyncio.run(databases.drop_database(name))


def client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # a jar that keeps 127.0.0.1's


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url, allow_redirects=False) as response:
        return response.status


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        page = await response.text()
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def sign_in(http: aiohttp.ClientSession, service: ConsoleService, key: str) -> None:
    """As a browser does: the sign-in form (its CSRF token, in the field and the cookie), then the key."""
    form = {"csrf": await csrf_of(http, f"{service.url}/console/login"), "api_key": service.keys[key]}
    async with http.post(f"{service.url}/console/login", data=form) as response:
        assert response.status == 200 and "voiceai_console" in response.cookies


@needs_php
async def test_a_token_from_the_php_page_opens_its_domain_and_no_other(service: ConsoleService) -> None:
    token = php_token(str(UMBRELLA), "carol@umbrella", "domain", 60)
    async with client() as http:
        async with http.post(f"{service.url}/console/fusionpbx", data={"token": token}) as response:
            assert response.status == 200
            assert f"/console/domains/{UMBRELLA}" in await response.text()
        assert await status_of(http, f"{service.url}/console/domains/{UMBRELLA}") == 200
        async with http.get(f"{service.url}/console/domains/{UMBRELLA}/directory") as response:
            assert "carol@umbrella" in await response.text()
        assert await status_of(http, f"{service.url}/console/domains/{ACME}") == 404
        assert await status_of(http, f"{service.url}/console/api/v1/admin/domains/{ACME}/calls") == 404
    async with client() as http, http.post(f"{service.url}/console/fusionpbx", data={"token": token}) as response:
        assert response.status == 401  # used once: a second post of the same token is refused
        assert "already used" in await response.text()


@needs_php
async def test_a_superadmin_token_sees_every_domain(service: ConsoleService) -> None:
    async with client() as http:
        token = php_token(str(UMBRELLA), "root", "superadmin", 30)
        async with http.post(f"{service.url}/console/fusionpbx", data={"token": token}) as response:
            assert response.status == 200
        for domain in (ACME, GLOBEX, UMBRELLA):
            assert await status_of(http, f"{service.url}/console/domains/{domain}/calls") == 200


@needs_php
@pytest.mark.parametrize(
    ("lifetime", "secret", "tamper", "reason"),
    [
        (-5, FUSIONPBX_SECRET, False, "expired"),
        (3600, FUSIONPBX_SECRET, False, "longer than"),
        (60, "a key FusionPBX should not have", False, "signature is wrong"),
        (60, FUSIONPBX_SECRET, True, "signature is wrong"),
    ],
    ids=["expired", "too-long-lived", "foreign-key", "tampered"],  # fixed ids: every xdist worker collects the same
)
async def test_an_expired_foreign_or_tampered_php_token_is_refused(
    service: ConsoleService, lifetime: int, secret: str, tamper: bool, reason: str
) -> None:
    token = php_token(str(UMBRELLA), "mallory", "domain", lifetime, secret)
    if tamper:  # the same signature over another domain's claims
        version, _, signature = token.split(".")
        other = php_token(str(ACME), "mallory", "domain", lifetime, secret).split(".")[1]
        token = f"{version}.{other}.{signature}"
    async with client() as http:
        async with http.post(f"{service.url}/console/fusionpbx", data={"token": token}) as response:
            assert response.status == 401
            assert reason in await response.text()
            assert "voiceai_console" not in response.cookies
        assert await status_of(http, f"{service.url}/console/domains/{UMBRELLA}") == 303


async def test_cookie_is_httponly_strict_secure_behind_https_pages_never_framed(service: ConsoleService) -> None:
    async with client() as http:
        for headers, secure in (({}, False), ({"X-Forwarded-Proto": "https"}, True)):
            async with http.get(f"{service.url}/console/login", headers=headers) as response:
                login = response.cookies["voiceai_console_login"]
                csrf = (await response.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
            assert login.value == csrf and login["path"] == "/console/login" and login["samesite"] == "Strict"
            assert login["httponly"] is True and bool(login["secure"]) is secure and 0 < int(login["max-age"]) <= 3600
            form = {"api_key": service.keys["acme"], "csrf": csrf}
            if secure:  # a Secure cookie: the jar keeps it from plain http, as a browser would; the proxy's https
                headers = headers | {"Cookie": f"voiceai_console_login={csrf}"}
            async with http.post(f"{service.url}/console/login", data=form, headers=headers) as response:
                cookie = response.cookies["voiceai_console"]
                assert response.cookies["voiceai_console_login"].value == ""  # the form's token is spent
            assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
            assert bool(cookie["secure"]) is secure
        async with http.get(f"{service.url}/console/domains/{ACME}") as response:
            assert response.status == 200
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
            assert (response.headers["X-Frame-Options"], response.headers["Cache-Control"]) == ("DENY", "no-store")


async def test_another_site_cannot_sign_a_browser_in_with_its_key(service: ConsoleService) -> None:
    login = f"{service.url}/console/login"
    async with client() as http:
        csrf = await csrf_of(http, login)
        form, origin = {"api_key": service.keys["acme"], "csrf": csrf}, {"Origin": "https://attacker.example"}
        async with http.post(login, data=form, headers=origin) as response:  # the token alone is not enough
            assert response.status == 403 and "voiceai_console" not in response.cookies
    async with client() as http:  # no Origin (an old browser, a proxy that strips it) and no form token
        async with http.post(login, data={"api_key": service.keys["acme"]}) as response:
            assert response.status == 403 and "voiceai_console" not in response.cookies
            assert "The sign-in form expired or came from elsewhere" in await response.text()
        async with http.post(login, data={"api_key": service.keys["acme"], "csrf": "1.2.3"}) as response:
            assert response.status == 403  # a made-up token, with no cookie
        planted = LoginTokens(60).issue(time.time())  # well formed, signed, but by another key than the service's
        http.cookie_jar.update_cookies({"voiceai_console_login": planted})
        async with http.post(login, data={"api_key": service.keys["acme"], "csrf": planted}) as response:
            assert response.status == 403 and "voiceai_console" not in response.cookies
        csrf = await csrf_of(http, login)
        async with http.post(login, data={"api_key": service.keys["acme"], "csrf": csrf + "x"}) as response:
            assert response.status == 403  # the field must be the cookie's token
        csrf = await csrf_of(http, login)
        async with http.post(login, data={"api_key": service.keys["acme"], "csrf": csrf}) as response:
            assert response.status == 200 and "voiceai_console" in response.cookies  # the form itself signs in


def test_the_sign_in_token_expires_and_is_checked_whole() -> None:
    tokens = LoginTokens(600)
    token = tokens.issue(NOW)
    assert tokens.valid(token, token, NOW + 599)
    assert not tokens.valid(token, token, NOW + 600)  # expired: the form asks for a reload
    assert not tokens.valid(token, None, NOW) and not tokens.valid(None, token, NOW)
    expiry, nonce, signature = token.split(".")
    longer = f"{int(expiry) + 3600}.{nonce}.{signature}"  # a later expiry under the same signature
    assert not tokens.valid(longer, longer, NOW)
    assert not LoginTokens(600).valid(token, token, NOW)  # another process's key


async def test_forms_and_scripts_need_the_csrf_token(service: ConsoleService) -> None:
    async with client() as http:
        await sign_in(http, service, "globex")
        page = f"{service.url}/console/domains/{GLOBEX}/credentials"
        async with http.post(page, data={"name": "openai", "secret": "sk-planted-by-a-forged-form"}) as response:
            assert response.status == 403
        api = f"{service.url}/console/api/v1/admin/domains/{GLOBEX}/credentials/openai"
        async with http.put(api, json={"secret": "sk-planted-by-a-forged-script"}) as response:
            assert response.status == 401
        async with http.get(f"{service.url}/console/api/v1/admin/domains/{GLOBEX}/credentials") as response:
            assert (await response.json())["items"] == []
        csrf = await csrf_of(http, page)
        form = {"csrf": csrf, "name": "openai", "secret": "sk-globex-real-1234", "description": "LLM"}
        async with http.post(page, data=form) as response:
            text = await response.text()
            assert "openai is stored." in text and "sk-globex-real-1234" not in text
            assert "1234" in text  # the hint: the last characters, never the secret
        async with http.put(api, json={"secret": "sk-globex-next-5678"}, headers={"X-CSRF-Token": csrf}) as response:
            assert response.status == 200


async def test_revoking_the_key_ends_its_console_sessions(service: ConsoleService) -> None:
    conn = await asyncpg.connect(service.database_url)
    try:
        async with client() as http:
            await sign_in(http, service, "umbrella")
            assert await status_of(http, f"{service.url}/console/domains/{UMBRELLA}/calls") == 200
            await conn.execute("UPDATE v_ai_api_keys SET key_enabled = false WHERE key_prefix = $1",
                               service.keys["umbrella"][:10])  # fmt: skip
            async with http.get(f"{service.url}/console/domains/{UMBRELLA}/calls", allow_redirects=False) as gone:
                assert (gone.status, gone.headers["Location"]) == (303, "/console/login")
    finally:
        await conn.close()


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(service: ConsoleService) -> None:
    async with client() as http:
        await sign_in(http, service, "acme")
        async with http.post(f"{service.url}/console/logout", allow_redirects=False) as response:
            assert response.status == 403  # a forged sign-out is refused too
        csrf = await csrf_of(http, f"{service.url}/console/")
        async with http.post(f"{service.url}/console/logout", data={"csrf": csrf}, allow_redirects=False) as response:
            assert response.status == 303
        assert await status_of(http, f"{service.url}/console/") == 303


async def test_a_test_call_is_minted_for_the_sessions_domain_only(service: ConsoleService) -> None:
    async with client() as http:
        await sign_in(http, service, "acme")
        page = f"{service.url}/console/domains/{ACME}/test-call"
        async with http.get(page) as response:
            assert "connect-src 'self' wss://pbx.example.com" in response.headers["Content-Security-Policy"]
        async with http.post(page, data={"sample_rate": "16000"}) as response:
            assert response.status == 403  # no CSRF token: no call
        csrf = await csrf_of(http, page)
        async with http.post(page, data={"csrf": csrf, "sample_rate": "16000"}) as response:
            minted = await response.json()
        call = uuid.UUID(minted["call_uuid"])
        stream, _, query = minted["url"].partition("?sample_rate=16000&test_call=")
        assert stream == f"{PUBLIC_BRIDGE}/stream/{ACME}/{call}" and BRIDGE_SECRET not in query
        assert minted["record"] == f"/console/domains/{ACME}/calls/{call}"
        settings = BridgeSettings(token_secret=BRIDGE_SECRET)
        assert valid_test_call_token(settings, query, ACME, call, time.time())
        assert not valid_test_call_token(settings, query, GLOBEX, call, time.time())
        async with http.post(f"{service.url}/console/domains/{GLOBEX}/test-call", data={"csrf": csrf}) as response:
            assert response.status == 404 and "test_call" not in await response.text()


async def test_a_domain_admin_can_neither_install_a_dialplan_nor_list_live_calls_for_another_domain(
    service: ConsoleService,
) -> None:
    async with client() as http:
        await sign_in(http, service, "globex")
        own = f"{service.url}/console/domains/{GLOBEX}/dialplan"
        csrf = await csrf_of(http, own)
        for domain in (ACME, UMBRELLA):
            form = {"csrf": csrf, "extension": "5321", "mode": "turn", "fallback": "201"}
            async with http.post(f"{service.url}/console/domains/{domain}/dialplan", data=form) as response:
                assert response.status == 404 and "unknown domain" in await response.text()
            delete = f"{service.url}/console/domains/{domain}/dialplan/5321/delete"
            async with http.post(delete, data={"csrf": csrf}) as response:
                assert response.status == 404
            assert await status_of(http, f"{service.url}/console/domains/{domain}/live") == 404
            api = f"{service.url}/console/api/v1/admin/domains/{domain}"
            async with http.put(f"{api}/dialplan/5321", json={"mode": "turn"}, headers={"X-CSRF-Token": csrf}) as r:
                assert r.status == 404
            assert await status_of(http, f"{api}/live-calls") == 404
        async with http.get(own) as response:  # its own: the page, and nothing installed anywhere
            assert response.status == 200 and "Not installed" in await response.text()
    database = Database(service.database_url)
    try:
        assert await database.fetchval("SELECT count(*) FROM v_dialplans WHERE app_uuid = $1", APP_UUID) == 0
    finally:
        await database.close()
