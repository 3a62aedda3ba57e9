"""Admin API keys in `v_ai_api_keys`. The key is 32 random bytes shown once; only its SHA-256 is stored (a
fast hash is right here: the key has 256 bits of entropy, so nothing is gained by a slow password hash)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel

from secretary.db.database import Database

KEY_PREFIX = "vai_"
Scope = Literal["domain", "superadmin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an admin request: a superadmin, or the admin of exactly one domain. `key_uuid` is the
    API key it authenticated with; None for a FusionPBX user signed into the console by a signed token."""

    key_uuid: UUID | None
    scope: Scope
    domain_uuid: UUID | None

    @property
    def is_superadmin(self) -> bool:
        return self.scope == "superadmin"

    def may_see(self, domain_uuid: UUID) -> bool:
        return self.is_superadmin or self.domain_uuid == domain_uuid


class ApiKeyInfo(BaseModel):
    key_uuid: UUID
    scope: Scope
    domain_uuid: UUID | None
    prefix: str
    description: str
    enabled: bool
    created_at: datetime
    last_used_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, scope: Scope, domain_uuid: UUID | None, description: str = "") -> tuple[str, ApiKeyInfo]:
        """Returns the key (to show once) and what is stored about it."""
        if (scope == "domain") != (domain_uuid is not None):
            raise ValueError("a domain key needs a domain; a superadmin key has none")
        key = new_key()
        row = await self._db.fetchrow(
            """INSERT INTO v_ai_api_keys (key_scope, domain_uuid, key_prefix, key_hash, key_description)
               VALUES ($1, $2, $3, $4, $5) RETURNING ai_api_key_uuid, key_scope, domain_uuid, key_prefix,
                   key_description, key_enabled, insert_date, last_used_date""",
            scope,
            domain_uuid,
            key[: len(KEY_PREFIX) + 6],
            hash_key(key),
            description,
        )
        assert row is not None
        return key, _info(row)

    async def authenticate(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        row = await self._db.fetchrow(
            """UPDATE v_ai_api_keys SET last_used_date = now()
               WHERE key_hash = $1 AND key_enabled
               RETURNING ai_api_key_uuid, key_scope, domain_uuid""",
            hash_key(key),
        )
        if row is None:
            return None
        return Principal(row["ai_api_key_uuid"], row["key_scope"], row["domain_uuid"])

    async def is_active(self, key_uuid: UUID) -> bool:
        """Whether the key still works: a console session signed in with a key ends when the key is revoked."""
        found = await self._db.fetchval("SELECT key_enabled FROM v_ai_api_keys WHERE ai_api_key_uuid = $1", key_uuid)
        return bool(found)

    async def list_keys(self, domain_uuid: UUID | None = None) -> list[ApiKeyInfo]:
        rows = await self._db.fetch(
            """SELECT ai_api_key_uuid, key_scope, domain_uuid, key_prefix,
                      coalesce(key_description, '') AS key_description, coalesce(key_enabled, false) AS key_enabled,
                      insert_date, last_used_date
               FROM v_ai_api_keys WHERE ($1::uuid IS NULL OR domain_uuid = $1) ORDER BY insert_date""",
            domain_uuid,
        )
        return [_info(r) for r in rows]

    async def revoke(self, reference: str) -> int:
        """Disable keys by their uuid or their shown prefix; returns how many were disabled."""
        try:
            key_uuid: UUID | None = UUID(reference)
        except ValueError:
            key_uuid = None
        status = await self._db.execute(
            """UPDATE v_ai_api_keys SET key_enabled = false, update_date = now()
               WHERE key_enabled AND (ai_api_key_uuid = $1 OR key_prefix = $2)""",
            key_uuid,
            reference,
        )
        return int(status.split()[-1])


def _info(r: asyncpg.Record) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_uuid=r["ai_api_key_uuid"],
        scope=r["key_scope"],
        domain_uuid=r["domain_uuid"],
        prefix=r["key_prefix"],
        description=r["key_description"],
        enabled=r["key_enabled"],
        created_at=r["insert_date"],
        last_used_at=r["last_used_date"],
    )
