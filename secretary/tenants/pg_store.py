"""Secretaries from the FusionPBX PostgreSQL: `v_domains` joined with our `v_ai_secretaries`."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from pydantic import SecretStr, ValidationError

from secretary.credentials.store import CredentialStore
from secretary.db.database import Database
from secretary.errors import DomainDisabled, NoSecretary, SecretaryDisabled, SecretaryError, UnknownDomain
from secretary.tenants.config import SecretaryConfig, TransferTarget

log = structlog.get_logger(__name__)
PROVIDER_KINDS = ("stt", "brain", "tts", "realtime", "embeddings")

# domain_enabled is boolean in every FusionPBX version, but compare as text like the other flags so the
# query reads the same on 5.4 and 5.5; NULL counts as disabled, as in FusionPBX's own queries.
_SELECT = """
SELECT d.domain_uuid, d.domain_name,
       coalesce(d.domain_enabled::text, 'false') = 'true' AS domain_enabled,
       s.ai_secretary_uuid, s.secretary_name, s.company_name, s.secretary_language, s.greeting,
       s.farewell, s.instructions, s.business_hours, s.fallback_destination, s.max_turns,
       s.max_call_seconds, s.recording, s.faq, s.providers, s.playback_mode, s.secretary_enabled, s.messages
FROM v_domains d
LEFT JOIN v_ai_secretaries s ON s.domain_uuid = d.domain_uuid
"""

_DIRECTORY = """
SELECT target_name, target_aliases, target_extension, target_description
FROM v_ai_secretary_directory
WHERE ai_secretary_uuid = $1 AND domain_uuid = $2
ORDER BY target_order, target_name
"""


class BrokenSecretaryRow(SecretaryError):
    """A row an admin edited by hand no longer validates; the message names the field."""

    code = "invalid_secretary_config"


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


class PostgresSecretaryStore:
    def __init__(self, database: Database, credentials: CredentialStore | None = None) -> None:
        self._db = database
        self._credentials = credentials

    async def by_uuid(self, domain_uuid: UUID) -> SecretaryConfig:
        row = await self._db.fetchrow(_SELECT + " WHERE d.domain_uuid = $1", domain_uuid)
        return await self._served(row, str(domain_uuid))

    async def by_name(self, domain_name: str) -> SecretaryConfig:
        row = await self._db.fetchrow(_SELECT + " WHERE lower(d.domain_name) = lower($1)", domain_name)
        return await self._served(row, domain_name)

    async def _served(self, row: asyncpg.Record | None, reference: str) -> SecretaryConfig:
        if row is None:
            raise UnknownDomain(f"unknown domain {reference!r}")
        if not row["domain_enabled"]:
            raise DomainDisabled(f"domain {row['domain_name']} is disabled")
        if row["ai_secretary_uuid"] is None:
            raise NoSecretary(f"domain {row['domain_name']} has no AI secretary")
        if not row["secretary_enabled"]:
            raise SecretaryDisabled(f"the secretary of {row['domain_name']} is disabled")
        return await self._with_secrets(await self._build(row))

    async def admin_get(self, domain_uuid: UUID) -> SecretaryConfig | None:
        """The domain's secretary as stored, enabled or not (None when it has none); for the admin API,
        which must see and fix what calls are refused. Raises `UnknownDomain`; secrets are not resolved."""
        row = await self._db.fetchrow(_SELECT + " WHERE d.domain_uuid = $1", domain_uuid)
        if row is None:
            raise UnknownDomain(f"unknown domain {domain_uuid}")
        if row["ai_secretary_uuid"] is None:
            return None
        return await self._build(row)

    async def admin_get_resolved(self, domain_uuid: UUID) -> SecretaryConfig | None:
        """`admin_get` with the credentials its providers would use attached (to name their health keys)."""
        config = await self.admin_get(domain_uuid)
        return None if config is None else await self._with_secrets(config)

    async def delete(self, domain_uuid: UUID) -> bool:
        status = await self._db.execute("DELETE FROM v_ai_secretaries WHERE domain_uuid = $1", domain_uuid)
        return status.endswith(" 1")

    async def _with_secrets(self, config: SecretaryConfig) -> SecretaryConfig:
        """Attach the decrypted credentials the config refers to. A missing or undecryptable one is logged
        and skipped: the chain then falls back (env variable, next provider, local engine), the call goes on."""
        specs = [s for kind in PROVIDER_KINDS for s in getattr(config.providers, kind)]
        messages = config.messages
        wanted = {s.api_key_ref for s in specs if s.api_key_ref}
        wanted |= {r for r in (messages.webhook_secret_ref, messages.smtp.password_ref if messages.smtp else None) if r}
        if not wanted or self._credentials is None:
            return config
        try:
            secrets = await self._credentials.secrets(config.domain_uuid, wanted)
        except SecretaryError as exc:
            log.warning("credentials_unavailable", domain=config.domain_name, reason=exc.message)
            return config
        missing = wanted - secrets.keys()
        if missing:
            log.warning("credentials_missing", domain=config.domain_name, names=sorted(missing))

        def resolve(chain: list[Any]) -> list[Any]:
            return [s.with_api_key(secrets.get(s.api_key_ref)) if s.api_key_ref else s for s in chain]

        providers = config.providers.model_copy(
            update={kind: resolve(getattr(config.providers, kind)) for kind in PROVIDER_KINDS}
        )
        messages = messages.model_copy()
        webhook_secret = secrets.get(messages.webhook_secret_ref or "")
        if webhook_secret:
            messages._webhook_secret = SecretStr(webhook_secret)
        smtp_password = secrets.get(messages.smtp.password_ref or "") if messages.smtp else None
        if messages.smtp is not None and smtp_password:
            messages.smtp = messages.smtp.model_copy()
            messages.smtp._password = SecretStr(smtp_password)
        return config.model_copy(update={"providers": providers, "messages": messages})

    async def _build(self, row: asyncpg.Record) -> SecretaryConfig:
        directory = await self._db.fetch(_DIRECTORY, row["ai_secretary_uuid"], row["domain_uuid"])
        stored = {
            "name": row["secretary_name"],
            "company": row["company_name"],
            "language": row["secretary_language"],
            "greeting": row["greeting"],
            "farewell": row["farewell"],
            "instructions": row["instructions"],
            "business_hours": _json(row["business_hours"], None),
            "max_turns": row["max_turns"],
            "max_call_seconds": row["max_call_seconds"],
            "recording": _json(row["recording"], None),
            "faq": _json(row["faq"], None),
            "providers": _json(row["providers"], None),
            "playback_mode": row["playback_mode"],
            "messages": _json(row["messages"], None),
        }
        try:
            return SecretaryConfig(
                domain_uuid=row["domain_uuid"],
                domain_name=row["domain_name"],
                enabled=row["secretary_enabled"] is True,  # NULL: what FusionPBX's save() inserts for false
                fallback_destination=row["fallback_destination"],
                directory=[
                    TransferTarget(
                        name=d["target_name"],
                        aliases=_json(d["target_aliases"], []),
                        extension=d["target_extension"],
                        description=d["target_description"] or "",
                    )
                    for d in directory
                ],
                # NULL is what FusionPBX's database::save() writes for an empty field: the field's default
                **{field: value for field, value in stored.items() if value is not None},
            )
        except ValidationError as exc:
            raise BrokenSecretaryRow(f"secretary of {row['domain_name']} is invalid: {exc}") from exc

    async def save(self, config: SecretaryConfig) -> None:
        """Create or replace a domain's secretary and its directory in one transaction."""
        async with self._db.connection() as conn, conn.transaction():
            secretary_uuid = await conn.fetchval(
                """INSERT INTO v_ai_secretaries (domain_uuid, secretary_name, company_name,
                       secretary_language, greeting, farewell, instructions, business_hours,
                       fallback_destination, max_turns, max_call_seconds, recording, faq, providers,
                       playback_mode, secretary_enabled, messages)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10,$11,$12::jsonb,$13::jsonb,$14::jsonb,$15,$16,
                           $17::jsonb)
                   ON CONFLICT (domain_uuid) DO UPDATE SET
                       secretary_name = EXCLUDED.secretary_name, company_name = EXCLUDED.company_name,
                       secretary_language = EXCLUDED.secretary_language, greeting = EXCLUDED.greeting,
                       farewell = EXCLUDED.farewell, instructions = EXCLUDED.instructions,
                       business_hours = EXCLUDED.business_hours,
                       fallback_destination = EXCLUDED.fallback_destination,
                       max_turns = EXCLUDED.max_turns, max_call_seconds = EXCLUDED.max_call_seconds,
                       recording = EXCLUDED.recording, faq = EXCLUDED.faq, providers = EXCLUDED.providers,
                       playback_mode = EXCLUDED.playback_mode,
                       secretary_enabled = EXCLUDED.secretary_enabled, messages = EXCLUDED.messages,
                       update_date = now()
                   RETURNING ai_secretary_uuid""",
                config.domain_uuid,
                config.name,
                config.company,
                config.language,
                config.greeting,
                config.farewell,
                config.instructions,
                config.business_hours.model_dump_json() if config.business_hours else None,
                config.fallback_destination,
                config.max_turns,
                config.max_call_seconds,
                config.recording.model_dump_json(),
                json.dumps([f.model_dump() for f in config.faq]),
                config.providers.model_dump_json(),
                config.playback_mode,
                config.enabled,
                config.messages.model_dump_json(exclude_none=True),
            )
            await conn.execute("DELETE FROM v_ai_secretary_directory WHERE ai_secretary_uuid = $1", secretary_uuid)
            await conn.executemany(
                """INSERT INTO v_ai_secretary_directory (domain_uuid, ai_secretary_uuid, target_name,
                       target_aliases, target_extension, target_description, target_order)
                   VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)""",
                [
                    (
                        config.domain_uuid,
                        secretary_uuid,
                        t.name,
                        json.dumps(t.aliases),
                        t.extension,
                        t.description,
                        i,
                    )
                    for i, t in enumerate(config.directory)
                ],
            )

    async def close(self) -> None:
        await self._db.close()
