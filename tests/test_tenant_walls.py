"""Tenants are walls, also against a tenant's own admin key: every config field that names an endpoint or a
credential is tried with another domain's and the operator's secrets, through the real admin API, the real
v1 API and real HTTP servers standing in for an attacker's hosts (SECURITY.md, "Credentials" and "Caches")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, get_args

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from bridge.engines.chain import EngineChain
from bridge.engines.pipeline import PipelineEngine
from bridge.engines.registry import EngineRegistry
from bridge.prompts import PromptAudio
from ivr_service.admin import OPERATIONS
from ivr_service.app import create_admin_app, create_app
from secretary.credentials.resolver import Credential, CredentialResolver
from secretary.credentials.secret_box import generate_secret_key
from secretary.knowledge.embedders import MiniLmEmbedder
from secretary.messages.email import smtp_target
from secretary.messages.models import Delivery, DeliveryChannel, DeliveryState, TakenMessage
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, parse_wav, wav_bytes
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import ProviderSpec, SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.conftest import acme_config
from tests.support import admin_env
from tests.support.admin_env import ACME, GLOBEX
from tests.support.speech import Speech
from tests.test_admin_api import _fill, _seed

OPERATOR_ENV = {
    "OPENAI_API_KEY": "sk-operator-openai-4f1c9a",
    "GROQ_API_KEY": "gsk-operator-groq-77d2e0",
    "DEEPGRAM_API_KEY": "dg-operator-deepgram-5b8e",
    "ELEVENLABS_API_KEY": "el-operator-elevenlabs-c3a1",
    "GEMINI_API_KEY": "gm-operator-gemini-90fe",
}
LLM_KEY = "sk-operator-llm-default-12ab"
GLOBEX_SECRET = "sk-globex-own-secret-e5e5"
# Every variable a domain tried to name in the attack, and one ordinary one.
ATTACKED_VARIABLES = ["VOICEAI_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "HOME"]
SERVICE_VARIABLES = {"VOICEAI_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}


class Attacker:
    """A host a tenant points its config at: records every request, answers 500 — or, for speech, audio of
    its own choosing (a constant sample value), to see whose audio another domain's callers would hear."""

    def __init__(self, sample: int = 0) -> None:
        self.requests: list[str] = []
        self.sample = sample
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(f"{request.method} {request.path_qs}\n{request.headers!r}\n{body!r}")
        if self.sample and request.path.endswith("/audio/speech"):
            return web.Response(body=self.sample.to_bytes(2, "little", signed=True) * 4800, content_type="audio/pcm")
        return web.json_response({"error": {"message": "no"}}, status=500)

    async def start(self) -> Attacker:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def saw_any(self, secrets: list[str]) -> list[str]:
        return [s for s in secrets if any(s in r for r in self.requests)]


@dataclass
class Walls:
    client: TestClient[Any, Any]  # the admin listener
    v1: TestClient[Any, Any]
    runtime: Runtime
    keys: dict[str, str]
    attacker: Attacker
    secrets: list[str]

    async def call(self, method: str, path: str, key: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json()

    async def patch(self, key: str, body: dict[str, Any], domain: uuid.UUID = ACME) -> tuple[int, Any]:
        return await self.call("PATCH", f"/api/v1/admin/domains/{domain}/secretary?check_targets=false", key, json=body)


@asynccontextmanager
async def _walls(
    database_url: str,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> AsyncIterator[Walls]:
    secret_key = generate_secret_key()
    for name, value in OPERATOR_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VOICEAI_SECRET_KEY", secret_key)
    monkeypatch.setenv("DATABASE_URL", database_url)
    settings = make_settings(
        database_url=database_url,
        secret_key=secret_key,
        llm={"api_key": LLM_KEY},
        messages={"enabled": False},
        **overrides,
    )
    runtime = Runtime.create(settings, models=models)
    assert runtime.credentials is not None and runtime.database is not None
    await runtime.credentials.put(GLOBEX, "globex-key", GLOBEX_SECRET)
    rows = PostgresSecretaryStore(runtime.database)
    saved = [await rows.admin_get(domain) for domain in (ACME, GLOBEX)]  # each test starts from these
    attacker = await Attacker().start()
    keys = await admin_env.api_keys(database_url)
    secrets = [*OPERATOR_ENV.values(), LLM_KEY, GLOBEX_SECRET, secret_key, database_url]
    try:
        async with (
            TestClient(TestServer(create_admin_app(runtime, own_runtime=True))) as client,
            TestClient(TestServer(create_app(runtime))) as v1,
        ):
            yield Walls(client, v1, runtime, keys, attacker, secrets)
            for config in filter(None, saved):
                await rows.save(config)
    finally:
        await attacker.stop()


@pytest.fixture
async def walls(
    request: pytest.FixtureRequest,
    writable_fusionpbx_url: str,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Walls]:
    """The attacker's hosts stand on 127.0.0.1 (tests reach nothing else), so these tests play an operator
    who allowed that address (`endpoints.allow_networks`): without it the egress policy refuses every such
    endpoint before the credential walls under test are reached. `walled` is the default: no allowance."""
    async with _walls(
        writable_fusionpbx_url,
        make_settings,
        models,
        monkeypatch,
        credentials={"share_default_keys": getattr(request, "param", False)},
        endpoints={"allow_networks": ["127.0.0.1/32"]},
    ) as built:
        yield built


@pytest.fixture
async def walled(
    writable_fusionpbx_url: str,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Walls]:
    """The operator allowed no private host: tenant endpoints may reach public addresses only."""
    async with _walls(writable_fusionpbx_url, make_settings, models, monkeypatch) as built:
        yield built


def _with_env_field(field: str, variable: str, url: str) -> dict[str, Any]:
    """A PATCH body naming `variable` in `field` (a provider kind, or a messages setting)."""
    if field == "smtp":
        return {"messages": {"smtp": {"host": "127.0.0.1", "port": 2525, "password_env": variable}}}
    if field == "webhook":
        return {"messages": {"webhook_url": url + "/hook", "webhook_secret_env": variable}}
    name = {"stt": "openai", "brain": "openai", "tts": "openai", "realtime": "openai_realtime"}.get(field, "openai")
    return {"providers": {field: [{"name": name, "base_url": url + "/v1", "api_key_env": variable}]}}


@pytest.mark.parametrize("field", ["stt", "brain", "tts", "realtime", "embeddings", "smtp", "webhook"])
async def test_a_domain_key_cannot_name_an_environment_credential(walls: Walls, field: str) -> None:
    before = await walls.call("GET", f"/api/v1/admin/domains/{ACME}/secretary", "acme")
    for variable in ATTACKED_VARIABLES:
        status, error = await walls.patch("acme", _with_env_field(field, variable, walls.attacker.url))
        if variable in SERVICE_VARIABLES:  # nobody may name the service's own secrets, not even the operator
            assert (status, error["error"]["code"]) == (400, "invalid_field"), error
            assert (await walls.patch("super", _with_env_field(field, variable, walls.attacker.url)))[0] == 400
        else:
            assert (status, error["error"]["code"]) == (403, "forbidden"), error
            assert "api_key_ref" in error["error"]["message"]
    assert await walls.call("GET", f"/api/v1/admin/domains/{ACME}/secretary", "acme") == before


async def test_operator_entries_a_domain_may_keep_and_remove_but_not_change(walls: Walls) -> None:
    operator_entry = {"name": "openai", "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"}
    assert (await walls.patch("super", {"providers": {"brain": [operator_entry]}}))[0] == 200
    assert (await walls.patch("acme", {"greeting": "Acme here, how can I help?"}))[0] == 200  # kept as it was
    redirected = operator_entry | {"base_url": walls.attacker.url + "/v1"}
    status, error = await walls.patch("acme", {"providers": {"brain": [redirected]}})
    assert (status, error["error"].get("field", "")) == (403, "")
    assert error["error"]["message"].startswith("providers.brain.0.api_key_env")
    moved = {"providers": {"brain": [{"name": "front_desk"}], "stt": [operator_entry]}}
    assert (await walls.patch("acme", moved))[0] == 403  # into another kind is a new entry
    assert (await walls.patch("acme", {"providers": {"brain": [{"name": "front_desk"}]}}))[0] == 200  # removed
    # the operator's webhook secret stays on the operator's URL
    hook = {"messages": {"webhook_url": "https://hooks.example.com/acme", "webhook_secret_env": "ACME_HOOK"}}
    assert (await walls.patch("super", hook))[0] == 200
    assert (await walls.patch("acme", {"messages": hook["messages"] | {"webhook_url": walls.attacker.url}}))[0] == 403
    assert not walls.attacker.requests


def _pointed_at(url: str) -> dict[str, Any]:
    """Every provider kind aimed at the attacker, once without a key of its own (the operator's defaults would
    apply) and once naming another domain's stored credential."""
    base = url + "/v1"

    def both(*entries: dict[str, Any]) -> list[dict[str, Any]]:
        return [e | extra for e in entries for extra in ({}, {"api_key_ref": "globex-key"})]

    return {
        "providers": {
            "stt": both({"name": "openai", "base_url": base}, {"name": "ollama", "base_url": base}),
            "brain": both(
                {"name": "openai", "base_url": base},
                {"name": "groq", "base_url": url + "/openai/v1"},
                {"name": "ollama", "base_url": base},
            ),
            "tts": both(
                {"name": "openai", "base_url": base},
                {"name": "ollama", "base_url": base, "voice": "alloy"},
                {"name": "elevenlabs", "base_url": url, "voice": "v1"},
            ),
            "embeddings": both({"name": "openai", "base_url": base}),
        },
        "messages": {"webhook_url": url + "/hook", "webhook_secret_ref": "globex-key"},
    }


REALTIME = [
    ("openai_realtime", "openai_realtime"),
    ("elevenlabs_convai", "elevenlabs_convai"),
    ("gemini", "gemini_live"),
]


@pytest.mark.parametrize("walls", [False, True], ids=["defaults-not-shared", "defaults-shared"], indirect=True)
async def test_no_operator_or_other_domain_secret_reaches_a_tenant_endpoint(walls: Walls, speech: Speech) -> None:
    assert (await walls.patch("acme", _pointed_at(walls.attacker.url)))[0] == 200
    started = await walls.v1.post("/api/v1/calls", json={"domain_uuid": str(ACME), "call_uuid": str(uuid.uuid4())})
    assert started.status == 200, await started.text()
    call = (await started.json())["call_uuid"]
    wav = wav_bytes(speech.say("What are your opening hours?"))
    turn = await walls.v1.post(f"/api/v1/calls/{call}/turns", data=wav, headers={"Content-Type": "audio/wav"})
    answered = await turn.json()
    assert turn.status == 200 and "Monday" in answered["say"]["text"], answered  # the local chain answered

    assert walls.attacker.requests, "the tenant's endpoints were never called: the test proves nothing"
    assert walls.attacker.saw_any(walls.secrets) == []
    served = await walls.runtime.secretaries.by_uuid(ACME)
    assert served.messages.webhook_secret_value() is None  # globex's credential is not acme's
    for name, family in REALTIME:
        spec = ProviderSpec(name=name, base_url=walls.attacker.url)
        assert walls.runtime.providers.credentials.for_spec(spec, served, family).value == ""
        assert walls.runtime.providers.credentials.for_spec(spec.with_api_key(None), served, family).origin == "none"


def _resolver(**credentials: Any) -> CredentialResolver:
    return CredentialResolver(
        Settings(
            database_url=None, redis_url=None, llm={"base_url": "http://10.1.1.1:8000/v1"}, credentials=credentials
        )
    )


def test_operator_default_keys_go_only_to_operator_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPERATOR_ENV["OPENAI_API_KEY"])
    tenant = acme_config()  # as the database store serves it: tenant-editable
    operator = SecretaryConfig.model_validate(tenant.model_dump()).owned_by_operator()  # the YAML file's
    operator_key = Credential(OPERATOR_ENV["OPENAI_API_KEY"], "operator")

    def key(resolver: CredentialResolver, base_url: str | None, config: SecretaryConfig = tenant) -> Credential:
        return resolver.for_spec(ProviderSpec(name="openai", base_url=base_url), config)

    assert key(_resolver(), None).origin == "none"  # not shared: a database secretary gets no default key
    assert key(_resolver(), "http://127.0.0.1:9/v1", operator) == operator_key  # the operator's own file
    shared = _resolver(share_default_keys=True, operator_endpoints=["https://proxy.example.com:8443"])
    assert key(shared, None) == operator_key
    assert key(shared, "https://PROXY.example.com:8443/v1") == operator_key
    assert key(shared, "http://10.1.1.1:8000/v1") == operator_key  # llm.base_url is the operator's
    for tenant_url in (
        "http://127.0.0.1:9/v1",
        "https://proxy.example.com:8444/v1",
        "http://proxy.example.com:8443/v1",
        "https://proxy.example.com:8443@attacker.example/v1",
        "https://attacker.example/v1?https://proxy.example.com:8443",
        "not a url",
    ):
        assert key(shared, tenant_url).origin == "none", tenant_url


def test_nobody_can_name_the_services_own_secrets() -> None:
    for variable in (
        "VOICEAI_SECRET_KEY",
        "voiceai_bridge__auth_token",
        "DATABASE_URL",
        "TEST_REDIS_URL",
        "PGPASSWORD",
    ):
        with pytest.raises(ValueError, match="service's own secrets"):
            ProviderSpec(name="openai", api_key_env=variable)
    with pytest.raises(ValueError):
        ProviderSpec(name="openai", api_key_env="NOT-A-NAME")
    for voice in ("../../v1/voices/add?x=", "a/b", "v 1", "..", ""):  # voices go into URL paths (ElevenLabs)
        with pytest.raises(ValueError):
            ProviderSpec(name="elevenlabs", voice=voice)


def test_the_operators_smtp_password_goes_only_to_the_operators_server() -> None:
    settings = Settings(database_url=None, redis_url=None, smtp={"host": "mail.operator.example", "password": "pw"})
    own = SecretaryConfig.model_validate(
        acme_config().model_dump() | {"messages": {"smtp": {"host": "127.0.0.1", "username": "operator"}}}
    )
    target = smtp_target(own, settings.smtp)
    assert target is not None and target.host == "127.0.0.1" and target.password is None
    default = smtp_target(acme_config(), settings.smtp)
    assert default is not None and (default.host, default.password) == ("mail.operator.example", "pw")


async def test_tts_cache_entries_never_cross_endpoints_keys_or_domains(walls: Walls, monkeypatch: Any) -> None:
    """Tenant A's server decides nothing that tenant B's callers hear, not even for a shared line."""
    first, second = await Attacker(sample=1111).start(), await Attacker(sample=-2222).start()
    try:
        same_voice = {"name": "ollama", "model": "tts-1", "voice": "alloy"}
        for domain, server in ((ACME, first), (GLOBEX, second)):
            body = {"providers": {"tts": [same_voice | {"base_url": server.url + "/v1"}]}}
            assert (await walls.patch("super", body, domain))[0] == 200
        heard = {}
        for domain in (ACME, GLOBEX):
            config = await walls.runtime.secretaries.by_uuid(domain)
            chain = walls.runtime.providers.tts(config)
            path, _cached = await walls.runtime.tts_cache.speak(chain, "One moment, please.")
            heard[domain] = parse_wav(path.read_bytes())
        assert _level(heard[ACME]) == 1111 and _level(heard[GLOBEX]) == -2222
        # the same tenant endpoint named by two domains still keeps two caches
        body = {"providers": {"tts": [same_voice | {"base_url": first.url + "/v1"}]}}
        assert (await walls.patch("super", body, GLOBEX))[0] == 200
        acme, globex = [await walls.runtime.secretaries.by_uuid(d) for d in (ACME, GLOBEX)]
        assert walls.runtime.providers.tts(acme).voice_id != walls.runtime.providers.tts(globex).voice_id
    finally:
        await first.stop()
        await second.stop()


def _level(pcm: Pcm) -> int:
    """The most common sample value (the attackers' audio is constant; resampling keeps it)."""
    samples = memoryview(pcm.data).cast("h")
    middle = samples[len(samples) // 4 : 3 * len(samples) // 4]
    return max(set(middle), key=list(middle).count)


# Every field of a secretary that names an endpoint or a credential, and the test above that attacks it; a new
# such field fails `test_every_endpoint_and_credential_field_is_attacked` until it is attacked too.
ATTACKED_FIELDS = {
    "providers.*.base_url": "test_no_operator_or_other_domain_secret_reaches_a_tenant_endpoint",
    "providers.*.api_key_ref": "test_no_operator_or_other_domain_secret_reaches_a_tenant_endpoint",
    "providers.*.api_key_env": "test_a_domain_key_cannot_name_an_environment_credential",
    "messages.webhook_url": "test_operator_entries_a_domain_may_keep_and_remove_but_not_change",
    "messages.webhook_secret_ref": "test_no_operator_or_other_domain_secret_reaches_a_tenant_endpoint",
    "messages.webhook_secret_env": "test_a_domain_key_cannot_name_an_environment_credential",
    "messages.smtp.host": "test_a_domain_key_cannot_point_an_endpoint_at_the_operators_network",
    "messages.smtp.password_env": "test_a_domain_key_cannot_name_an_environment_credential",
    "messages.smtp.password_ref": "test_the_operators_smtp_password_goes_only_to_the_operators_server",
}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _field_names(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of every field, nested models included; a provider chain's kind is written `*`."""
    names = set()
    for name, info in model.model_fields.items():
        path = "providers.*" if prefix == "providers." else prefix + name
        names.add(path)
        for nested in _models_in(info.annotation):
            names |= _field_names(nested, path + ".")
    return names


def test_every_endpoint_and_credential_field_is_attacked() -> None:
    sensitive = {n for n in _field_names(SecretaryConfig) if n.endswith(("url", "_env", "_ref", ".host"))}
    assert sensitive == set(ATTACKED_FIELDS), sensitive ^ set(ATTACKED_FIELDS)
    assert all(name in globals() for name in ATTACKED_FIELDS.values())


async def test_no_admin_route_shows_a_secret_to_the_domain_that_owns_it(walls: Walls) -> None:
    """Every GET route of the admin API, with acme's key on acme's own data: no stored credential of any
    domain and no operator secret in any answer."""
    acme = await _seed(walls.runtime, ACME, "5551001", "transfer")  # a call, a message, a stored credential
    superadmin_entry = {"name": "openai", "api_key_env": "OPENAI_API_KEY", "api_key_ref": "openai"}
    assert (await walls.patch("super", {"providers": {"brain": [superadmin_entry]}}))[0] == 200
    secrets = [*walls.secrets, "sk-test-secret-123456"]
    for operation in (op for op in OPERATIONS if op.method == "GET"):
        path = _fill(operation.full_path, acme, ACME)
        async with walls.client.get(path, headers={"Authorization": f"Bearer {walls.keys['acme']}"}) as response:
            body = await response.read()
        assert response.status < 500, (path, body[:300])
        assert [s for s in secrets if s.encode() in body] == [], path


# -- egress: where a tenant's endpoints may point (SECURITY.md, "Endpoints") ----------------------------------

NOT_PUBLIC = ["127.0.0.1", "169.254.169.254", "10.0.0.5", "::1", "::ffff:127.0.0.1", "0.0.0.0", "localhost"]
ENDPOINT_FIELDS = ["stt", "brain", "tts", "realtime", "embeddings", "webhook", "smtp"]
PUBLIC = "93.184.216.34"  # only ever written, never contacted: no call is made where it is stored


def _endpoint_at(field: str, host: str, scheme: str = "http") -> tuple[dict[str, Any], str]:
    """A PATCH body pointing `field` at `host`, and the field as the API names it."""
    netloc = f"[{host}]:8087" if ":" in host else f"{host}:8087"
    if field == "webhook":
        return {"messages": {"webhook_url": f"{scheme}://{netloc}/hook"}}, "messages.webhook_url"
    if field == "smtp":
        return {"messages": {"smtp": {"host": host, "port": 25}}}, "messages.smtp.host"
    entry = {"name": "openai_realtime" if field == "realtime" else "openai", "base_url": f"{scheme}://{netloc}/v1"}
    return {"providers": {field: [entry]}}, f"providers.{field}.0.base_url"


@pytest.mark.parametrize("field", ENDPOINT_FIELDS)
async def test_a_domain_key_cannot_point_an_endpoint_at_the_operators_network(walled: Walls, field: str) -> None:
    path = f"/api/v1/admin/domains/{ACME}/secretary"
    before = await walled.call("GET", path, "acme")
    for host in NOT_PUBLIC:
        status, error = await walled.patch("acme", _endpoint_at(field, host)[0])
        name = _endpoint_at(field, host)[1]
        assert (status, error["error"]["code"], error["error"].get("field")) == (400, "endpoint_not_allowed", name)
        assert error["error"]["message"].startswith(f"{name}: "), error
    assert await walled.call("GET", path, "acme") == before  # nothing was stored
    assert (await walled.patch("acme", _endpoint_at(field, PUBLIC)[0]))[0] == 200  # a public address is fine
    assert (await walled.patch("super", _endpoint_at(field, "127.0.0.1")[0]))[0] == 200  # the operator may write it
    assert (await walled.patch("acme", {"greeting": "Acme, good day."}))[0] == 200  # and the domain keeps it
    assert not walled.attacker.requests


async def test_endpoint_schemes_are_http_or_websocket_where_an_engine_speaks_it(walled: Walls) -> None:
    for field, scheme in (("brain", "ftp"), ("stt", "ws"), ("tts", "gopher"), ("embeddings", "file")):
        body, name = _endpoint_at(field, PUBLIC, scheme)
        status, error = await walled.patch("acme", body)
        assert (status, error["error"]["code"], error["error"].get("field")) == (400, "endpoint_not_allowed", name)
        assert f"{scheme} scheme is not allowed" in error["error"]["message"]
    assert (await walled.patch("acme", _endpoint_at("realtime", PUBLIC, "wss")[0]))[0] == 200


async def _stored_past_the_api(walls: Walls, *, smtp: bool) -> SecretaryConfig:
    """Acme's row pointed at the attacker, written straight into PostgreSQL (as a row from before the policy,
    or one an intruder wrote), then read as every call reads it."""
    assert walls.runtime.database is not None
    store = PostgresSecretaryStore(walls.runtime.database)
    current = await store.admin_get(ACME)
    assert current is not None
    body = _pointed_at(walls.attacker.url)
    body["providers"]["realtime"] = [{"name": "openai_realtime", "base_url": walls.attacker.url + "/v1"}]
    if smtp:
        port = int(walls.attacker.url.rsplit(":", 1)[1])
        body["messages"] |= {"email_to": ["frontdesk@acme.example.com"], "smtp": {"host": "127.0.0.1", "port": port}}
    await store.save(SecretaryConfig.model_validate(current.model_dump() | body))
    walls.runtime.secretaries.invalidate()
    # deliveries an earlier test of this module left pending must not be attempted here
    await walls.runtime.database.execute(
        "UPDATE v_ai_message_deliveries SET delivery_state = 'failed' WHERE delivery_state = 'pending'"
    )
    return await walls.runtime.secretaries.by_uuid(ACME)


async def _turn(walls: Walls, speech: Speech) -> str:
    started = await walls.v1.post("/api/v1/calls", json={"domain_uuid": str(ACME), "call_uuid": str(uuid.uuid4())})
    assert started.status == 200, await started.text()
    call = (await started.json())["call_uuid"]
    wav = wav_bytes(speech.say("What are your opening hours?"))
    turn = await walls.v1.post(f"/api/v1/calls/{call}/turns", data=wav, headers={"Content-Type": "audio/wav"})
    answered = await turn.json()
    assert turn.status == 200, answered
    return str(answered["say"]["text"])


async def _deliveries(walls: Walls, config: SecretaryConfig) -> list[Delivery]:
    message = TakenMessage(domain_uuid=ACME, call_uuid=uuid.uuid4(), caller_id_number="5550123", transcript="Hi.")
    await walls.runtime.courier.take(message, config)
    await walls.runtime.courier.deliver_due()
    stored = await walls.runtime.messages.get(ACME, message.message_uuid)
    assert stored is not None
    return stored.deliveries


async def test_a_stored_loopback_endpoint_is_never_used_without_the_operators_allowance(
    walled: Walls, speech: Speech
) -> None:
    served = await _stored_past_the_api(walled, smtp=True)
    assert "Monday" in await _turn(walled, speech)  # the local chain answered, the caller noticed nothing
    runtime = walled.runtime
    local = MiniLmEmbedder(runtime.models, runtime.pool)
    assert runtime.providers.embedder(served, local) is local
    assert isinstance(EngineRegistry().build(runtime, served, 8000, PromptAudio(runtime)), PipelineEngine)
    deliveries = await _deliveries(walled, served)
    assert {d.channel for d in deliveries} == {DeliveryChannel.WEBHOOK, DeliveryChannel.EMAIL}
    for delivery in deliveries:
        assert delivery.state is DeliveryState.PENDING and delivery.last_error is not None
        assert "127.0.0.1 is not a public address" in delivery.last_error, delivery.last_error
    assert walled.attacker.requests == []


async def test_with_the_operators_allowance_a_stored_loopback_endpoint_is_used(walls: Walls, speech: Speech) -> None:
    served = await _stored_past_the_api(walls, smtp=False)
    assert "Monday" in await _turn(walls, speech)  # the attacker's 500s fall back to the local chain
    assert any("/v1/" in r for r in walls.attacker.requests)
    runtime = walls.runtime
    assert isinstance(EngineRegistry().build(runtime, served, 8000, PromptAudio(runtime)), EngineChain)
    (webhook,) = await _deliveries(walls, served)
    assert webhook.last_error == "webhook answered HTTP 500"
    assert any(r.startswith("POST /hook") for r in walls.attacker.requests)


@pytest.mark.parametrize("walls", [True], ids=["defaults-shared"], indirect=True)
async def test_one_domains_entry_can_never_bench_anothers_provider(walls: Walls) -> None:
    """Health is keyed like the adapter: a domain whose entry fails (a bogus voice, its own agent) on the
    operator's shared key benches only itself, not another domain's good entry on the same provider."""
    for domain, voice in ((ACME, "bogus-voice"), (GLOBEX, "alloy")):
        body = {"providers": {"tts": [{"name": "openai", "model": "gpt-4o-mini-tts", "voice": voice}]}}
        assert (await walls.patch("super", body, domain))[0] == 200
    acme, globex = [await walls.runtime.secretaries.by_uuid(d) for d in (ACME, GLOBEX)]
    engines = [walls.runtime.providers.tts(c)._candidates()[0][1] for c in (acme, globex)]
    keys = [getattr(e, "health_key") for e in engines]  # noqa: B009
    assert keys[0] != keys[1] and all(k.startswith("tts:openai:default:") for k in keys)
    walls.runtime.providers.health.failed(keys[0], RuntimeError("400 unknown voice"))
    assert not walls.runtime.providers.health.available(keys[0]) and walls.runtime.providers.health.available(keys[1])
    # the same for realtime engines: another agent on the operator's ElevenLabs key is another health entry
    specs = [ProviderSpec(name="elevenlabs_convai", options={"agent_id": agent}) for agent in ("bad", "good")]
    credentials = walls.runtime.providers.credentials
    ids = [credentials.identify(s, c, "elevenlabs_convai") for s, c in zip(specs, (acme, globex), strict=True)]
    assert ids[0].credential == ids[1].credential and ids[0].credential.origin == "operator"
    assert ids[0].health_key("realtime", specs[0]) != ids[1].health_key("realtime", specs[1])
