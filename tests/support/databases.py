"""Throwaway FusionPBX-shaped databases in the real PostgreSQL: FusionPBX's own table definitions (5.4 or
5.5) and the three-domain seed, created per test session and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "fusionpbx"
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

ACME = "d0000000-0001-4000-8000-000000000001"
GLOBEX = "d0000000-0002-4000-8000-000000000002"
INITECH = "d0000000-0003-4000-8000-000000000003"  # disabled domain


def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(schema: str | None, seed: bool = True) -> tuple[str, str]:
    """Returns (name, url). `schema` is "5.4", "5.5" or None for an empty database."""
    name = f"voiceai_test_{schema.replace('.', '') if schema else 'empty'}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(name)
    if schema:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute((FIXTURES / f"schema-{schema}.sql").read_text())
            if seed:
                await conn.execute((FIXTURES / "seed.sql").read_text())
        finally:
            await conn.close()
    return name, url


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
