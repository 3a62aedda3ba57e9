"""`v_ai_provider_credentials`: per-domain named secrets, encrypted with the `SecretBox`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel

from secretary.credentials.secret_box import SecretBox, secret_hint
from secretary.db.database import Database


class CredentialInfo(BaseModel):
    """What the admin API shows of a credential: never the secret."""

    name: str
    description: str
    hint: str
    created_at: datetime
    updated_at: datetime | None


class CredentialStore:
    def __init__(self, database: Database, box: SecretBox) -> None:
        self._db = database
        self._box = box

    async def put(self, domain_uuid: UUID, name: str, secret: str, description: str = "") -> bool:
        """Create or replace; returns True when it was created."""
        encrypted = self._box.encrypt(secret)
        row = await self._db.fetchrow(
            """INSERT INTO v_ai_provider_credentials (domain_uuid, credential_name, credential_description,
                   encrypted_secret, secret_hint)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (domain_uuid, credential_name) DO UPDATE SET
                   credential_description = EXCLUDED.credential_description,
                   encrypted_secret = EXCLUDED.encrypted_secret, secret_hint = EXCLUDED.secret_hint,
                   update_date = now()
               RETURNING (xmax = 0) AS created""",
            domain_uuid,
            name,
            description,
            encrypted,
            secret_hint(secret),
        )
        return bool(row and row["created"])

    async def list(self, domain_uuid: UUID) -> list[CredentialInfo]:
        rows = await self._db.fetch(
            """SELECT credential_name, coalesce(credential_description, '') AS credential_description,
                      coalesce(secret_hint, '') AS secret_hint, insert_date, update_date
               FROM v_ai_provider_credentials WHERE domain_uuid = $1 ORDER BY credential_name""",
            domain_uuid,
        )
        return [
            CredentialInfo(
                name=r["credential_name"],
                description=r["credential_description"],
                hint=r["secret_hint"],
                created_at=r["insert_date"],
                updated_at=r["update_date"],
            )
            for r in rows
        ]

    async def delete(self, domain_uuid: UUID, name: str) -> bool:
        status = await self._db.execute(
            "DELETE FROM v_ai_provider_credentials WHERE domain_uuid = $1 AND credential_name = $2",
            domain_uuid,
            name,
        )
        return status.endswith(" 1")

    async def secrets(self, domain_uuid: UUID, names: set[str]) -> dict[str, str]:
        """Decrypted secrets of this domain by name (only the ones asked for)."""
        if not names:
            return {}
        rows = await self._db.fetch(
            """SELECT credential_name, encrypted_secret FROM v_ai_provider_credentials
               WHERE domain_uuid = $1 AND credential_name = ANY($2::text[])""",
            domain_uuid,
            sorted(names),
        )
        return {r["credential_name"]: self._box.decrypt(r["encrypted_secret"]) for r in rows}
