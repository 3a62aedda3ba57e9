"""Versioned, transactional migrations for our own tables inside the FusionPBX database.

Each file in `sql/` named `NNNN_name.sql` is applied once, in its own transaction, under an advisory lock,
so two services starting together don't race and a failing migration leaves nothing half-applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from secretary.db.database import Database

_LOCK_KEY = 0x5EC2E7A1  # pg_advisory_xact_lock key: "secretary"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database can't take our migrations (not a FusionPBX database, or a migration failed)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("secretary.db").joinpath("sql").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def migrate(database: Database) -> list[Migration]:
    """Apply what is missing; returns the migrations applied by this call (empty when up to date)."""
    applied: list[Migration] = []
    async with database.connection() as conn:
        if await conn.fetchval("SELECT to_regclass('v_domains')") is None:
            raise MigrationError("table v_domains is missing: point DATABASE_URL at the FusionPBX database (fusionpbx)")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS v_ai_schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL,
                   applied_date timestamptz NOT NULL DEFAULT now())"""
        )
        for migration in available_migrations():
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                done = await conn.fetchval("SELECT 1 FROM v_ai_schema_migrations WHERE version = $1", migration.version)
                if done:
                    continue
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {migration.version} ({migration.name}) failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO v_ai_schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied.append(migration)
    return applied


async def current_version(database: Database) -> int:
    async with database.connection() as conn:
        if await conn.fetchval("SELECT to_regclass('v_ai_schema_migrations')") is None:
            return 0
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM v_ai_schema_migrations"))


async def pending_migrations(database: Database) -> list[Migration]:
    """Migrations not applied yet, including ones numbered below the newest applied (a branch merged late)."""
    async with database.connection() as conn:
        if await conn.fetchval("SELECT to_regclass('v_ai_schema_migrations')") is None:
            return available_migrations()
        done = {r[0] for r in await conn.fetch("SELECT version FROM v_ai_schema_migrations")}
    return [m for m in available_migrations() if m.version not in done]
