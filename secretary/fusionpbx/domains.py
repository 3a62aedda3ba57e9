"""`v_domains`: the tenants."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from secretary.db.database import Database
from secretary.errors import UnknownDomain


class Domain(BaseModel):
    domain_uuid: UUID
    domain_name: str
    enabled: bool
    has_secretary: bool


_SELECT = """
SELECT d.domain_uuid, d.domain_name, coalesce(d.domain_enabled::text, 'false') = 'true' AS enabled,
       EXISTS (SELECT 1 FROM v_ai_secretaries s WHERE s.domain_uuid = d.domain_uuid) AS has_secretary
FROM v_domains d
"""


def _domain(row: object) -> Domain:
    return Domain.model_validate(dict(row))  # type: ignore[call-overload]


class DomainDirectory:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, reference: str | UUID) -> Domain:
        """A domain by uuid or by name (case-insensitive). Raises `UnknownDomain`."""
        domain_uuid: UUID | None
        if isinstance(reference, UUID):
            domain_uuid = reference
        else:
            try:
                domain_uuid = UUID(reference)
            except ValueError:
                domain_uuid = None
        if domain_uuid is not None:
            row = await self._db.fetchrow(_SELECT + " WHERE d.domain_uuid = $1", domain_uuid)
        else:
            row = await self._db.fetchrow(_SELECT + " WHERE lower(d.domain_name) = lower($1)", str(reference))
        if row is None:
            raise UnknownDomain(f"unknown domain {str(reference)!r}")
        return _domain(row)

    async def list_domains(self, offset: int = 0, limit: int = 50) -> list[Domain]:
        rows = await self._db.fetch(_SELECT + " ORDER BY d.domain_name OFFSET $1 LIMIT $2", offset, limit)
        return [_domain(r) for r in rows]
