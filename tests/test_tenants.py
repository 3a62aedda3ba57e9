"""Secretary configuration and its two stores (YAML file, FusionPBX PostgreSQL on schemas 5.4 and 5.5)."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
import yaml
from pydantic import ValidationError

from secretary.db.database import Database
from secretary.db.migrations import MigrationError, available_migrations, current_version, migrate
from secretary.errors import DependencyUnavailable, DomainDisabled, NoSecretary, SecretaryDisabled, UnknownDomain
from secretary.settings import Settings
from secretary.tenants.config import BusinessHours, SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from secretary.tenants.store import CachedSecretaryStore, lookup
from secretary.tenants.yaml_store import SecretaryFileError, YamlSecretaryStore
from tests.conftest import EXAMPLE_SECRETARIES, acme_config
from tests.support import databases
from tests.support.tcp_proxy import tcp_proxy_for


def test_business_hours_describe_and_is_open() -> None:
    hours = BusinessHours(
        timezone="Europe/Paris",
        weekly={"mon": ["08:30-12:00", "13:00-18:00"], "tue": ["08:30-12:00", "13:00-18:00"], "sat": ["10:00-24:00"]},
        closed_dates=["2026-12-25"],
    )
    assert hours.describe() == (
        "We are open Monday to Tuesday, 8:30 AM to 12 PM and 1 PM to 6 PM; Saturday, 10 AM to midnight."
    )
    assert hours.is_open(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # Monday 09:00 in Paris
    assert not hours.is_open(datetime(2026, 11, 23, 11, 30, tzinfo=UTC))  # lunch break
    with pytest.raises(ValidationError, match="unknown time zone"):
        BusinessHours(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="end after it starts"):
        BusinessHours(weekly={"mon": ["17:00-09:00"]})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fallback_destination", "1001 XML evil"),  # would inject into uuid_transfer's arguments
        ("fallback_destination", "1001'"),
        ("domain_name", "acme example"),
        ("language", "english"),
        ("max_turns", 0),
    ],
)
def test_values_that_reach_freeswitch_are_single_inert_tokens(field: str, value: object) -> None:
    data = acme_config().model_dump() | {field: value}
    with pytest.raises(ValidationError, match=field):
        SecretaryConfig.model_validate(data)


def test_directory_extension_must_be_inert() -> None:
    data = acme_config().model_dump()
    data["directory"][0]["extension"] = "1002;uuid_kill"
    with pytest.raises(ValidationError, match="extension"):
        SecretaryConfig.model_validate(data)


async def test_yaml_store_lookups_and_reload(tmp_path: Path) -> None:
    path = tmp_path / "secretaries.yaml"
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    path.write_text(yaml.safe_dump(document))
    store = YamlSecretaryStore(path)
    store.load()
    config = await lookup(store, None, "ACME.example.com")
    assert config.domain_uuid == UUID(databases.ACME)
    assert (await lookup(store, databases.ACME, None)).name == "Ava"
    with pytest.raises(UnknownDomain):
        await store.by_name("globex.example.com")

    document["secretaries"][0]["name"] = "Bea"
    document["secretaries"][0]["enabled"] = True
    path.write_text(yaml.safe_dump(document))
    os.utime(path, (1, 1))  # a different mtime, as an admin's edit gives
    assert (await store.by_name("acme.example.com")).name == "Bea"

    document["secretaries"][0]["enabled"] = False
    path.write_text(yaml.safe_dump(document))
    os.utime(path, (2, 2))
    with pytest.raises(SecretaryDisabled):
        await store.by_name("acme.example.com")


def test_yaml_store_names_the_broken_entry(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    document["secretaries"].append(dict(document["secretaries"][0]))
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SecretaryFileError, match="appears twice"):
        YamlSecretaryStore(path).load()
    del document["secretaries"][1]
    document["secretaries"][0]["fallback_destination"] = "not valid!"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SecretaryFileError, match=r"(?s)secretaries\[0\].*fallback_destination"):
        YamlSecretaryStore(path).load()


async def test_lookup_requires_a_domain_reference() -> None:
    store = YamlSecretaryStore(EXAMPLE_SECRETARIES)
    store.load()
    with pytest.raises(Exception, match="domain_uuid or domain_name is required"):
        await lookup(store, None, None)
    with pytest.raises(Exception, match="not a UUID"):
        await lookup(store, "acme", None)


async def test_postgres_store_on_both_fusionpbx_schemas(fusionpbx_url: str) -> None:
    database = Database(fusionpbx_url)
    store = PostgresSecretaryStore(database)
    try:
        acme = await store.by_name("acme.example.com")
        assert acme == acme_config()
        assert (await store.by_uuid(UUID(databases.GLOBEX))).company == "Globex"
        with pytest.raises(DomainDisabled):
            await store.by_name("initech.example.com")
        with pytest.raises(UnknownDomain):
            await store.by_uuid(UUID(int=7))

        # A domain FusionPBX knows but without a secretary of ours.
        other = UUID("d0000000-0009-4000-8000-000000000009")
        await database.execute(
            "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled) VALUES ($1, $2, true)",
            other,
            "umbrella.example.com",
        )
        with pytest.raises(NoSecretary):
            await store.by_uuid(other)
        config = SecretaryConfig.model_validate(
            acme.model_dump() | {"domain_uuid": other, "domain_name": "umbrella.example.com", "enabled": False}
        )
        await store.save(config)
        with pytest.raises(SecretaryDisabled):
            await store.by_uuid(other)
        updated = config.model_copy(update={"enabled": True, "directory": config.directory[:1]})
        await store.save(updated)  # an update replaces the directory
        assert [t.name for t in (await store.by_uuid(other)).directory] == ["Sales"]
        await database.execute("DELETE FROM v_domains WHERE domain_uuid = $1", other)
        assert await database.fetchrow("SELECT 1 FROM v_ai_secretaries WHERE domain_uuid = $1", other) is None
    finally:
        await database.close()


async def test_cached_store_reuses_answers_but_not_refusals(fusionpbx_url: str) -> None:
    database = Database(fusionpbx_url)
    cached = CachedSecretaryStore(PostgresSecretaryStore(database), ttl_s=60)
    try:
        first = await cached.by_name("globex.example.com")
        await database.execute(
            "UPDATE v_ai_secretaries SET secretary_name = 'Zed' WHERE domain_uuid = $1", UUID(databases.GLOBEX)
        )
        assert (await cached.by_uuid(UUID(databases.GLOBEX))) is first
        cached.invalidate()
        assert (await cached.by_uuid(UUID(databases.GLOBEX))).name == "Zed"
    finally:
        await database.execute(
            "UPDATE v_ai_secretaries SET secretary_name = 'Ava' WHERE domain_uuid = $1", UUID(databases.GLOBEX)
        )
        await database.close()


async def test_cached_store_serves_the_last_known_config_while_postgresql_is_down(fusionpbx_url: str) -> None:
    """Past its cache time, a domain's lookup during an outage gets the last config PostgreSQL gave, so the
    call (and the message a caller is leaving) goes on; a domain refused while PostgreSQL answered, or never
    seen, is not served from memory."""
    globex = UUID(databases.GLOBEX)
    admin = Database(fusionpbx_url)
    with tcp_proxy_for(fusionpbx_url) as proxy:
        database = Database(proxy.url_for(fusionpbx_url), timeout_s=2)
        cached = CachedSecretaryStore(PostgresSecretaryStore(database), ttl_s=0)  # every lookup asks PostgreSQL
        try:
            acme = await cached.by_uuid(UUID(databases.ACME))
            await cached.by_name("globex.example.com")
            await admin.execute("UPDATE v_ai_secretaries SET secretary_enabled = false WHERE domain_uuid = $1", globex)
            with pytest.raises(SecretaryDisabled):
                await cached.by_uuid(globex)
            proxy.cut()
            assert await cached.by_uuid(UUID(databases.ACME)) == acme
            assert await cached.by_name("ACME.example.com") == acme
            with pytest.raises(DependencyUnavailable):
                await cached.by_name("globex.example.com")  # disabled while PostgreSQL answered
            with pytest.raises(DependencyUnavailable):
                await cached.by_uuid(UUID(databases.INITECH))  # never seen
        finally:
            await admin.execute("UPDATE v_ai_secretaries SET secretary_enabled = true WHERE domain_uuid = $1", globex)
            await admin.close()
            await database.close()


async def test_migrations_are_idempotent_and_refuse_a_database_without_fusionpbx() -> None:
    name, url = await databases.create_database("5.4")
    empty_name, empty_url = await databases.create_database(None)
    try:
        database = Database(url)
        assert [m.version for m in await migrate(database)] == [m.version for m in available_migrations()]
        assert await migrate(database) == []
        assert await current_version(database) == available_migrations()[-1].version
        await database.close()

        empty = Database(empty_url)
        with pytest.raises(MigrationError, match="v_domains is missing"):
            await migrate(empty)
        conn = await asyncpg.connect(empty_url)
        try:  # nothing was created
            assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'v_ai_%'") == 0
        finally:
            await conn.close()
        await empty.close()
    finally:
        await databases.drop_database(name)
        await databases.drop_database(empty_name)


async def test_unreachable_database_is_a_dependency_error_not_a_crash() -> None:
    store = PostgresSecretaryStore(Database("postgresql://postgres@127.0.0.1:9/none", timeout_s=1))
    with pytest.raises(DependencyUnavailable, match="postgresql"):
        await store.by_name("acme.example.com")
    await store.close()


def test_settings_from_yaml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "voice-ai.yaml"
    config.write_text("ivr:\n  port: 9100\nspool:\n  dir: /srv/spool\nlog_format: console\n")
    monkeypatch.setenv("VOICEAI_CONFIG", str(config))
    monkeypatch.setenv("VOICEAI_IVR__HOST", "0.0.0.0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://fusionpbx@db/fusionpbx")
    settings = Settings()
    assert (settings.ivr.host, settings.ivr.port) == ("0.0.0.0", 9100)
    assert settings.spool.dir == Path("/srv/spool") and settings.log_format == "console"
    assert settings.database_url == "postgresql://fusionpbx@db/fusionpbx"
    assert settings.bridge.port == 8085 and settings.redis_url is None
    monkeypatch.setenv("VOICEAI_IVR__PORT", "not a port")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_example_secretaries_file_is_valid() -> None:
    store = YamlSecretaryStore(EXAMPLE_SECRETARIES)
    assert [c.domain_name for c in store.load()] == ["acme.example.com"]
    asyncio.run(store.close())
