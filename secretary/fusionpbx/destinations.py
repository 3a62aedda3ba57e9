"""What a domain's calls can be transferred to in FusionPBX: enabled extensions (and their number aliases),
ring groups, call-center queues, IVR menus and voicemail boxes (dialled as `*99<box>`, FusionPBX's feature
code for "straight to voicemail"). Used to validate a secretary's directory and to offer choices."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from secretary.db.database import Database

Kind = Literal["extension", "ring_group", "call_center_queue", "ivr_menu", "voicemail"]
VOICEMAIL_PREFIX = "*99"

# Each query returns (number, name) for one kind; flags compared as text for 5.4 and 5.5 alike.
_QUERIES: list[tuple[Kind, str, str]] = [
    (
        "extension",
        "v_extensions",
        """SELECT extension AS number,
                  coalesce(nullif(effective_caller_id_name, ''), nullif(description, ''), extension) AS name
           FROM v_extensions WHERE domain_uuid = $1 AND enabled::text = 'true' AND coalesce(extension, '') <> ''
           UNION ALL
           SELECT number_alias, coalesce(nullif(effective_caller_id_name, ''), extension)
           FROM v_extensions WHERE domain_uuid = $1 AND enabled::text = 'true' AND coalesce(number_alias, '') <> ''""",
    ),
    (
        "ring_group",
        "v_ring_groups",
        """SELECT ring_group_extension, coalesce(ring_group_name, ring_group_extension) FROM v_ring_groups
           WHERE domain_uuid = $1 AND ring_group_enabled::text = 'true'
             AND coalesce(ring_group_extension, '') <> ''""",
    ),
    (
        "call_center_queue",
        "v_call_center_queues",
        """SELECT queue_extension, coalesce(queue_name, queue_extension) FROM v_call_center_queues
           WHERE domain_uuid = $1 AND coalesce(queue_extension, '') <> ''""",
    ),
    (
        "ivr_menu",
        "v_ivr_menus",
        """SELECT ivr_menu_extension, coalesce(ivr_menu_name, ivr_menu_extension) FROM v_ivr_menus
           WHERE domain_uuid = $1 AND ivr_menu_enabled::text = 'true' AND coalesce(ivr_menu_extension, '') <> ''""",
    ),
    (
        "voicemail",
        "v_voicemails",
        f"""SELECT '{VOICEMAIL_PREFIX}' || voicemail_id, 'Voicemail ' || voicemail_id FROM v_voicemails
           WHERE domain_uuid = $1 AND voicemail_enabled::text = 'true' AND coalesce(voicemail_id, '') <> ''""",
    ),
]


class PbxDestination(BaseModel):
    kind: Kind
    number: str
    name: str


class PbxDestinations:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def list_destinations(self, domain_uuid: UUID) -> list[PbxDestination]:
        found: list[PbxDestination] = []
        async with self._db.connection() as conn:
            for kind, table, query in _QUERIES:
                if await conn.fetchval("SELECT to_regclass($1)", table) is None:
                    continue  # a trimmed-down install without that app
                for row in await conn.fetch(query, domain_uuid):
                    found.append(PbxDestination(kind=kind, number=row[0], name=row[1]))
        return sorted(found, key=lambda d: (d.number, d.kind))

    async def unknown_numbers(self, domain_uuid: UUID, numbers: list[str]) -> set[str]:
        """The numbers among `numbers` that are no enabled destination of this domain."""
        known = {d.number for d in await self.list_destinations(domain_uuid)}
        return {n for n in numbers if n not in known}
