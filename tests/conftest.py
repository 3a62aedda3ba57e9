"""Shared fixtures: real PostgreSQL (FusionPBX 5.4 and 5.5 schemas), real Redis, real speech engines."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from ivr_service.app import create_app
from secretary.db.database import Database
from secretary.db.migrations import migrate
from secretary.runtime import Runtime
from secretary.settings import EngineSettings, Settings
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.support import databases
from tests.support.models import SessionModels
from tests.support.speech import Speech

# Whisper's OpenMP threads sleep as soon as they have nothing to do: spinning for work (libgomp's default) took
# CPU from the other workers' calls on a 2-core box. Read when CTranslate2 loads (lazily, in a test).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SECRETARIES = ROOT / "config" / "secretaries.example.yaml"


def _worker_redis_url(base: str) -> str:
    """Each pytest-xdist worker (gw0, gw1, …) on a Redis db of its own, the base db plus its index: tests in
    different files claim the same fixed call uuids, and must not see each other's claims."""
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{int(parts.path.strip('/') or 0) + index}"))


REDIS_URL = _worker_redis_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9"))

# What makes a test end to end (`e2e`) rather than a `unit` test: one of these fixtures (the real Whisper,
# Piper and MiniLM, PostgreSQL, Redis, a served app), or a module that drives the real pieces itself
# (throwaway databases, subprocesses of the CLI, the bridge or Chroma, the extraction workers).
E2E_FIXTURES = {"models", "speech", "fusionpbx_url", "writable_fusionpbx_url", "redis_url", "client_for"}
E2E_MODULES = {
    "test_call_realtime_cli",
    "test_dialplan_examples",
    "test_engine_imports",
    "test_fusionpbx_integration",
    "test_install_kit",
    "test_kb_cli",
    "test_knowledge_base",
    "test_knowledge_chroma_server",
    "test_knowledge_ingest",
    "test_llm_local",
    "test_tenants",
    "test_voiceai_call",
}


# The modules that take longest (whole calls in real time), longest first: pytest-xdist hands out work in
# collection order, so these start at once and no worker is left running one at the end. Measured with
# `--durations=0`; a module missing here only starts later.
LONGEST_MODULES = [
    "test_bridge_cloud_engines",
    "test_cross_transport",
    "test_faults",
    "test_bridge_call_control",
    "test_console_test_call",
    "test_admin_api",
    "test_bridge_openai_realtime",
    "test_bridge_pipeline",
    "test_realtime_fallback",
    "test_tenant_walls",
    "test_pipeline_streaming",
    "test_engine_imports",
]


# Modules whose tests each start their own bridge, servers and calls: with `--dist loadgroup` their tests are
# spread over the workers one by one (a module-scoped fixture is then made once per worker that needs it).
# Every other module stays whole on one worker, its module fixtures made once.
SPREAD_MODULES = {
    "test_bridge_cloud_engines",
    "test_faults",
    "test_bridge_call_control",
    "test_bridge_openai_realtime",
    "test_bridge_pipeline",
    "test_realtime_fallback",
    "test_pipeline_streaming",
    "test_bridge_keys",
    "test_bridge_playback_modes",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is `unit` or `e2e` (pyproject's markers), so `pytest -m unit` is the fast loop; each test
    gets its pytest-xdist group (its module, or itself in a spread module); the longest modules go first
    (each module's own order kept)."""
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        e2e = bool(uses & E2E_FIXTURES) or item.path.stem in E2E_MODULES
        item.add_marker(pytest.mark.e2e if e2e else pytest.mark.unit)
        stem = item.path.stem
        item.add_marker(pytest.mark.xdist_group(item.nodeid if stem in SPREAD_MODULES else stem))
    rank = {stem: index for index, stem in enumerate(LONGEST_MODULES)}
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.path.stem, len(rank)), order[id(item)]))


def acme_config() -> SecretaryConfig:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    return SecretaryConfig.model_validate(document["secretaries"][0])


def globex_config() -> SecretaryConfig:
    """Same extensions as acme (as in the FusionPBX seed), different company and facts."""
    return SecretaryConfig.model_validate(
        acme_config().model_dump()
        | {
            "domain_uuid": databases.GLOBEX,
            "domain_name": "globex.example.com",
            "company": "Globex",
            "greeting": "Globex, good day. How may I help?",
            "faq": [
                {
                    "question": "Do you sell hovercraft?",
                    "answer": "Yes, Globex sells hovercraft in three colours.",
                    "keywords": ["hovercraft"],
                }
            ],
        }
    )


@pytest.fixture(scope="session")
def models() -> LocalModels:
    return SessionModels(EngineSettings())


@pytest.fixture(scope="session")
def speech(models: LocalModels) -> Speech:
    return Speech(models)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one test: its own spool and data folders, the example secretaries, no DB/Redis unless
    asked for (explicit values win over the environment and config/voice-ai.yaml)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": None,
            "redis_url": None,
            "secretaries_file": EXAMPLE_SECRETARIES,
            "data_dir": tmp_path / "data",
            "spool": {"dir": tmp_path / "spool"},
            "config_cache_s": 0,
            "dependency_timeout_s": 10.0,  # generous: a busy box must not turn a slow query into a 503
        }
        values.update(overrides)
        return Settings(**values)

    return build


async def _prepare_fusionpbx(schema: str) -> tuple[str, str]:
    name, url = await databases.create_database(schema)
    database = Database(url)
    try:
        await migrate(database)
        store = PostgresSecretaryStore(database)
        await store.save(acme_config())
        await store.save(globex_config())
        initech = SecretaryConfig.model_validate(
            acme_config().model_dump() | {"domain_uuid": databases.INITECH, "domain_name": "initech.example.com"}
        )
        await store.save(initech)  # its domain is disabled in v_domains
    finally:
        await database.close()
    return name, url


@pytest.fixture(scope="session", params=["5.4", "5.5"])
def fusionpbx_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated FusionPBX database of each schema version, with secretaries for the seeded domains."""
    name, url = asyncio.run(_prepare_fusionpbx(request.param))
    yield url
    asyncio.run(databases.drop_database(name))


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="module", params=["5.4", "5.5"])
def writable_fusionpbx_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Like `fusionpbx_url`, but one database per test module: for tests that change secretaries or
    FusionPBX rows and must not disturb other modules."""
    from tests.support import admin_env

    name, url = asyncio.run(admin_env.prepare(request.param))
    yield url
    asyncio.run(databases.drop_database(name))


@pytest.fixture
async def client_for(models: LocalModels) -> AsyncIterator[Callable[[Settings], Any]]:
    """v1 test clients over their own runtimes (closed with them), made per settings."""
    clients: list[TestClient[Any, Any]] = []

    async def make(settings: Settings) -> TestClient[Any, Any]:
        runtime = Runtime.create(settings, models=models)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(runtime, own_runtime=True)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
