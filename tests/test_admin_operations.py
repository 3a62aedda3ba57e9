"""The admin API's operations pages over real HTTP against a FusionPBX-shaped PostgreSQL (5.4 and 5.5) and a
real Redis: the dialplan rows installed, updated and removed with FusionPBX's file cache flushed (and what is
said when it can't be), the per-domain bridge token, live calls of a domain while a v1 call is in progress, and
each domain's own provider health; a domain key touches none of another domain's."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from freeswitch.esl import EslClient
from freeswitch.esl_server_sim import EslServerSimulator
from ivr_service.app import create_admin_app, create_app
from secretary.access.stream_tokens import derive_domain_token
from secretary.credentials.secret_box import generate_secret_key
from secretary.db.database import Database
from secretary.fusionpbx.dialplan import APP_UUID
from secretary.fusionpbx.dialplan_cache import cache_file, checked_context, flush_instructions
from secretary.runtime import Runtime
from secretary.settings import EslSettings, Settings
from secretary.speech.local_engines import LocalModels
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.conftest import REDIS_URL
from tests.support import admin_env
from tests.support.admin_env import ACME, GLOBEX

TOKEN_SECRET = "t" * 40
PREFIX = "/api/v1/admin/domains"


@dataclass
class Service:
    client: TestClient[Any, Any]
    v1: TestClient[Any, Any]
    runtime: Runtime
    keys: dict[str, str]
    cache_dir: Path

    async def call(self, method: str, path: str, key: str = "super", **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        async with self.client.request(method, PREFIX + path, headers=headers, **kwargs) as response:
            return response.status, await response.json()


Make = Callable[..., Any]


@pytest.fixture
async def serve(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    keys = await admin_env.api_keys(writable_fusionpbx_url)

    @asynccontextmanager
    async def started(**overrides: Any) -> AsyncIterator[Service]:
        cache_dir = tmp_path / "fusionpbx-cache"
        cache_dir.mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "database_url": writable_fusionpbx_url,
            "redis_url": REDIS_URL,
            "secret_key": generate_secret_key(),
            "messages": {"enabled": False},
            "fusionpbx": {"cache_dir": cache_dir},
        }
        fusionpbx = values["fusionpbx"] | overrides.pop("fusionpbx", {})
        settings = make_settings(**(values | overrides | {"fusionpbx": fusionpbx}))
        runtime = Runtime.create(settings, models=models)
        async with (
            TestClient(TestServer(create_admin_app(runtime, own_runtime=True))) as client,
            TestClient(TestServer(create_app(runtime))) as v1,
        ):
            yield Service(client, v1, runtime, keys, cache_dir)

    yield started


async def _rows(url: str, domain: uuid.UUID) -> list[Any]:
    database = Database(url)
    try:
        return list(
            await database.fetch(
                "SELECT dialplan_number, dialplan_xml FROM v_dialplans WHERE app_uuid = $1 AND domain_uuid = $2",
                APP_UUID,
                domain,
            )
        )
    finally:
        await database.close()


async def test_a_domain_admin_installs_updates_and_uninstalls_its_row_and_the_cache_is_flushed(
    serve: Make, writable_fusionpbx_url: str
) -> None:
    async with serve(bridge={"token_secret": TOKEN_SECRET, "auth_token": "shared-operator-token"}) as service:
        cached = cache_file(service.cache_dir, "acme.example.com")
        cached.write_text("<stale/>")
        other = cache_file(service.cache_dir, "globex.example.com")
        other.write_text("<globex/>")
        status, empty = await service.call("GET", f"/{ACME}/dialplan", "acme")
        assert status == 200 and empty["installed"] == [] and empty["context"] == "acme.example.com"

        status, installed = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={"mode": "turn"})
        assert status == 201, installed
        assert installed["created"] and installed["mode"] == "turn"
        assert installed["cache"] == {
            "method": "file",
            "flushed": True,
            "detail": f"deleted {cached}",
            "flush_instructions": None,
        }
        assert not cached.exists() and other.read_text() == "<globex/>"  # only this context's entry

        status, updated = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={"mode": "realtime"})
        assert status == 200 and not updated["created"], updated
        assert updated["cache"]["flushed"] and "nothing was cached" in updated["cache"]["detail"]
        (xml,) = [r["dialplan_xml"] for r in await _rows(writable_fusionpbx_url, ACME)]
        assert derive_domain_token(TOKEN_SECRET, ACME) in xml  # the domain's own token ...
        assert "shared-operator-token" not in xml  # ... never the operator's shared one
        status, listed = await service.call("GET", f"/{ACME}/dialplan", "acme")
        assert [(r["extension"], r["mode"], r["enabled"]) for r in listed["installed"]] == [("5777", "realtime", True)]

        status, removed = await service.call("DELETE", f"/{ACME}/dialplan/5777", "acme")
        assert status == 200 and removed["removed"] and removed["cache"]["flushed"]
        assert await _rows(writable_fusionpbx_url, ACME) == []
        status, again = await service.call("DELETE", f"/{ACME}/dialplan/5777", "acme")
        assert status == 200 and not again["removed"]


async def test_realtime_with_only_the_shared_token_is_refused_to_a_domain_admin(
    serve: Make, writable_fusionpbx_url: str
) -> None:
    async with serve(bridge={"auth_token": "shared-operator-token"}) as service:
        status, refused = await service.call("PUT", f"/{GLOBEX}/dialplan/5888", "globex", json={"mode": "realtime"})
        assert status == 409 and refused["error"]["code"] == "shared_bridge_token", refused
        assert await _rows(writable_fusionpbx_url, GLOBEX) == []  # nothing written
        status, turn = await service.call("PUT", f"/{GLOBEX}/dialplan/5888", "globex", json={"mode": "turn"})
        assert status == 201 and turn["warnings"] == []
        status, by_operator = await service.call("PUT", f"/{GLOBEX}/dialplan/5888", json={"mode": "realtime"})
        assert status == 200 and "shared bridge.auth_token" in by_operator["warnings"][0]
        assert (await service.call("DELETE", f"/{GLOBEX}/dialplan/5888"))[0] == 200


async def test_a_domain_key_can_neither_install_nor_list_nor_remove_another_domains_rows(
    serve: Make, writable_fusionpbx_url: str
) -> None:
    async with serve() as service:
        assert (await service.call("PUT", f"/{GLOBEX}/dialplan/5999", json={"mode": "turn"}))[0] == 201
        for method, path, body in (
            ("PUT", f"/{GLOBEX}/dialplan/5998", {"json": {"mode": "turn"}}),
            ("GET", f"/{GLOBEX}/dialplan", {}),
            ("DELETE", f"/{GLOBEX}/dialplan/5999", {}),
            ("GET", f"/{GLOBEX}/live-calls", {}),
            ("GET", f"/{GLOBEX}/providers/health", {}),
        ):
            status, error = await service.call(method, path, "acme", **body)
            assert (status, error["error"]["code"]) == (404, "unknown_domain"), path
        assert [r["dialplan_number"] for r in await _rows(writable_fusionpbx_url, GLOBEX)] == ["5999"]
        assert (await service.call("DELETE", f"/{GLOBEX}/dialplan/5999"))[0] == 200


async def test_a_bad_extension_is_refused_naming_the_field(serve: Make) -> None:
    async with serve() as service:
        status, error = await service.call("PUT", f"/{ACME}/dialplan/12a", "acme", json={"mode": "turn"})
        assert status == 400 and error["error"]["field"] == "extension"
        status, error = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={"mode": "video"})
        assert status == 400 and error["error"]["field"] == "mode"


async def test_without_the_cache_folder_the_answer_says_what_the_admin_must_run(serve: Make, tmp_path: Path) -> None:
    absent = tmp_path / "no-fusionpbx-here"
    async with serve(fusionpbx={"cache_dir": absent}) as service:
        status, installed = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={})
        assert status == 201
        assert not installed["cache"]["flushed"] and "is not on this machine" in installed["cache"]["detail"]
        assert f"rm -f {absent}/dialplan.acme.example.com" in installed["cache"]["flush_instructions"]
        assert (await service.call("DELETE", f"/{ACME}/dialplan/5777", "acme"))[0] == 200
    async with serve(fusionpbx={"cache_method": "memcache"}) as service:
        status, installed = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={})
        assert not installed["cache"]["flushed"] and "no ESL connection" in installed["cache"]["detail"]
        assert "memcache delete dialplan:acme.example.com" in installed["cache"]["flush_instructions"]
        assert (await service.call("DELETE", f"/{ACME}/dialplan/5777", "acme"))[0] == 200


async def test_with_memcache_the_contexts_entry_is_deleted_over_the_bridges_esl(serve: Make) -> None:
    """The bridge in the same process (`voiceai serve`) lends its ESL connection: a real socket to the simulator."""
    switch = EslServerSimulator()
    port = await switch.start()
    esl = EslClient(EslSettings(port=port))
    esl.start()
    try:
        assert await esl.wait_connected(5)
        switch.memcache |= {"dialplan:acme.example.com": "<stale/>", "dialplan:globex.example.com": "<globex/>"}
        async with serve(fusionpbx={"cache_method": "memcache"}) as service:
            service.runtime.esl = esl
            status, installed = await service.call("PUT", f"/{ACME}/dialplan/5777", "acme", json={})
            assert status == 201
            assert installed["cache"] == {
                "method": "memcache",
                "flushed": True,
                "detail": "memcache delete dialplan:acme.example.com: +OK",
                "flush_instructions": None,
            }
            assert switch.memcache == {"dialplan:globex.example.com": "<globex/>"}  # only this context's
            status, removed = await service.call("DELETE", f"/{ACME}/dialplan/5777", "acme")
            assert removed["cache"]["flushed"] and "NOT FOUND" in removed["cache"]["detail"]  # nothing cached
            assert switch.commands_for("memcache") == ["memcache delete dialplan:acme.example.com"] * 2
    finally:
        await esl.close()
        await switch.close()


@pytest.mark.parametrize(
    "context", ["../etc", "acme.example.com/../../x", "a..b", ".hidden", "x/y", "", "a b", "a" * 254]
)
def test_a_context_that_walks_a_path_names_no_cache_file(context: str, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="plain domain name"):
        cache_file(tmp_path, context)
    with pytest.raises(Exception, match="plain domain name"):
        flush_instructions(context, tmp_path)


def test_a_domain_name_is_a_context() -> None:
    for name in ("acme.example.com", "pbx-1.example.net", "10.0.0.5", "tenant_a.voip.example"):
        assert checked_context(name) == name


async def test_a_domain_whose_name_walks_a_path_is_refused_before_anything_is_written(
    serve: Make, writable_fusionpbx_url: str
) -> None:
    evil = uuid.uuid4()
    database = Database(writable_fusionpbx_url)
    try:
        await database.execute(
            "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled) VALUES ($1, $2, 'true')",
            evil,
            "../../etc/evil",
        )
    finally:
        await database.close()
    async with serve() as service:
        status, error = await service.call("PUT", f"/{evil}/dialplan/5000", json={"fallback": "100"})
        assert (status, error["error"]["field"]) == (400, "context")
        assert (await service.call("DELETE", f"/{evil}/dialplan/5000"))[0] == 400
    assert await _rows(writable_fusionpbx_url, evil) == []


async def _start_call(service: Service, domain: uuid.UUID, caller: str) -> uuid.UUID:
    call_uuid = uuid.uuid4()
    body = {"domain_uuid": str(domain), "call_uuid": str(call_uuid), "caller_id_number": caller}
    async with service.v1.post("/api/v1/calls", json=body) as response:
        assert response.status == 200, await response.text()
    return call_uuid


async def _end_call(service: Service, domain: uuid.UUID, call_uuid: uuid.UUID) -> None:
    async with service.v1.post(f"/api/v1/calls/{call_uuid}/end", json={"domain_uuid": str(domain)}) as response:
        assert response.status == 200


async def test_live_calls_list_the_domains_calls_in_progress_and_no_others(serve: Make) -> None:
    async with serve() as service:
        acme_call = await _start_call(service, ACME, "5550101")
        globex_call = await _start_call(service, GLOBEX, "5550202")
        try:
            # Other tests on this worker may have left calls of these domains in Redis: only ours are looked at.
            ours = {str(acme_call), str(globex_call)}
            status, live = await service.call("GET", f"/{ACME}/live-calls", "acme")
            assert status == 200
            (call,) = [c for c in live["items"] if c["call_uuid"] in ours]
            assert call["call_uuid"] == str(acme_call) and call["caller_id_number"] == "5550101"
            assert call["transport"] == "turn" and call["turns"] == 0
            status, theirs = await service.call("GET", f"/{GLOBEX}/live-calls", "globex")
            assert [c["call_uuid"] for c in theirs["items"] if c["call_uuid"] in ours] == [str(globex_call)]
        finally:
            await _end_call(service, ACME, acme_call)
            await _end_call(service, GLOBEX, globex_call)
        left = (await service.call("GET", f"/{ACME}/live-calls", "acme"))[1]["items"]
        assert str(acme_call) not in {c["call_uuid"] for c in left}


async def test_provider_health_shows_a_domains_benched_entry_and_not_anothers_with_its_own_key(serve: Make) -> None:
    """Both domains name the same provider entry, each with a key of its own: benching acme's leaves globex's."""
    async with serve() as service:
        runtime = service.runtime
        assert runtime.credentials is not None
        chains = {"brain": [{"name": "openai", "model": "gpt-4o-mini", "api_key_ref": "llm"}, {"name": "front_desk"}]}
        for domain, key in ((ACME, "acme"), (GLOBEX, "globex")):
            await runtime.credentials.put(domain, "llm", f"sk-{key}-" + uuid.uuid4().hex, "LLM key")
            status, saved = await service.call("PATCH", f"/{domain}/secretary", key, json={"providers": chains})
            assert status == 200, saved
        status, health = await service.call("GET", f"/{ACME}/providers/health", "acme")
        assert status == 200 and not any(p["benched"] for p in health["items"])
        assert runtime.database is not None
        config = await PostgresSecretaryStore(runtime.database, runtime.credentials).admin_get_resolved(ACME)
        assert config is not None
        spec = config.providers.brain[0]
        runtime.providers.health.failed(
            runtime.providers.credentials.identify(spec, config).health_key("brain", spec), ConnectionError("refused")
        )
        status, health = await service.call("GET", f"/{ACME}/providers/health", "acme")
        benched = [(p["kind"], p["position"], p["name"], p["reason"]) for p in health["items"] if p["benched"]]
        assert benched == [("brain", 1, "openai", "ConnectionError: refused")]
        status, theirs = await service.call("GET", f"/{GLOBEX}/providers/health", "globex")
        assert [p["name"] for p in theirs["items"] if p["kind"] == "brain"] == ["openai", "front_desk"]
        assert not any(p["benched"] for p in theirs["items"])
        await runtime.providers.health.close()
