"""A FusionPBX-shaped database of our own (both schema versions) for tests that change data, with the
acme and globex secretaries saved, and helpers to create admin API keys in it."""

from __future__ import annotations

from uuid import UUID

from secretary.access.api_keys import ApiKeyStore
from secretary.db.database import Database
from secretary.db.migrations import migrate
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.support import databases

ACME = UUID(databases.ACME)
GLOBEX = UUID(databases.GLOBEX)
INITECH = UUID(databases.INITECH)


async def prepare(schema: str) -> tuple[str, str]:
    from tests.conftest import acme_config, globex_config

    name, url = await databases.create_database(schema)
    database = Database(url)
    try:
        await migrate(database)
        store = PostgresSecretaryStore(database)
        await store.save(acme_config())
        await store.save(globex_config())
    finally:
        await database.close()
    return name, url


async def api_keys(url: str) -> dict[str, str]:
    """Fresh keys: superadmin, acme, globex."""
    database = Database(url)
    try:
        store = ApiKeyStore(database)
        return {
            "super": (await store.create("superadmin", None, "test"))[0],
            "acme": (await store.create("domain", ACME, "test"))[0],
            "globex": (await store.create("domain", GLOBEX, "test"))[0],
        }
    finally:
        await database.close()
