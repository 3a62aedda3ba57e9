"""Finished calls with their transcripts: PostgreSQL (`v_ai_calls`, `v_ai_call_turns`) or JSON files, and
the spill where a record waits while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Protocol
from uuid import UUID

import asyncpg
import structlog

from secretary.calls.models import CallRecord, TurnRecord
from secretary.conversation.actions import Action
from secretary.db.database import Database
from secretary.errors import DependencyUnavailable, UnknownDomain
from secretary.speech.tts_cache import write_atomically
from secretary.usage import summed

log = structlog.get_logger(__name__)


class CallRecordStore(Protocol):
    async def save(self, record: CallRecord) -> None: ...

    async def get(self, domain_uuid: UUID, call_uuid: UUID) -> CallRecord | None: ...

    async def usage_totals(self, domain_uuid: UUID, since: datetime | None = None) -> dict[str, float]:
        """The domain's usage summed over its calls (started at or after `since`): see `secretary.usage`."""
        ...


class FileCallRecordStore:
    """`<data_dir>/calls/<domain_uuid>/<call_uuid>.json`, one file a call."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _path(self, domain_uuid: UUID, call_uuid: UUID) -> Path:
        return self._dir / str(domain_uuid) / f"{call_uuid}.json"

    async def save(self, record: CallRecord) -> None:
        path = self._path(record.domain_uuid, record.call_uuid)
        await asyncio.to_thread(write_atomically, path, record.model_dump_json(indent=1).encode())

    async def get(self, domain_uuid: UUID, call_uuid: UUID) -> CallRecord | None:
        path = self._path(domain_uuid, call_uuid)
        if not path.is_file():
            return None
        return CallRecord.model_validate_json(await asyncio.to_thread(path.read_bytes))

    async def usage_totals(self, domain_uuid: UUID, since: datetime | None = None) -> dict[str, float]:
        def read() -> list[dict[str, float]]:
            folder = self._dir / str(domain_uuid)
            records = [CallRecord.model_validate_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
            return [r.usage for r in records if since is None or r.started_at >= since]

        return summed(await asyncio.to_thread(read))

    async def take_all(self) -> list[CallRecord]:
        """Every record held here (the spill's are moved into PostgreSQL, then `remove`d)."""

        def read() -> list[CallRecord]:
            return [CallRecord.model_validate_json(p.read_bytes()) for p in sorted(self._dir.glob("*/*.json"))]

        return await asyncio.to_thread(read)

    async def remove(self, record: CallRecord) -> None:
        await asyncio.to_thread(self._path(record.domain_uuid, record.call_uuid).unlink, True)


class PostgresCallRecordStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def save(self, record: CallRecord) -> None:
        try:
            async with self._db.connection() as conn, conn.transaction():
                call_row = await conn.fetchval(
                    """INSERT INTO v_ai_calls (domain_uuid, call_uuid, transport, caller_id_number,
                           caller_id_name, destination_number, start_stamp, end_stamp, duration_ms,
                           turn_count, outcome, outcome_destination, hangup_cause, usage)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14::jsonb)
                       ON CONFLICT (domain_uuid, call_uuid) DO UPDATE SET end_stamp = EXCLUDED.end_stamp,
                           duration_ms = EXCLUDED.duration_ms, turn_count = EXCLUDED.turn_count,
                           outcome = EXCLUDED.outcome, outcome_destination = EXCLUDED.outcome_destination,
                           hangup_cause = EXCLUDED.hangup_cause, usage = EXCLUDED.usage
                       RETURNING ai_call_uuid""",
                    record.domain_uuid,
                    record.call_uuid,
                    record.transport,
                    record.caller_id_number,
                    record.caller_id_name,
                    record.destination_number,
                    record.started_at,
                    record.ended_at,
                    record.duration_ms,
                    len(record.turns),
                    record.outcome,
                    record.outcome_destination,
                    record.hangup_cause,
                    json.dumps(record.usage),
                )
                await conn.execute("DELETE FROM v_ai_call_turns WHERE ai_call_uuid = $1", call_row)
                await conn.executemany(
                    """INSERT INTO v_ai_call_turns (ai_call_uuid, domain_uuid, turn_index, turn_stamp,
                           caller_text, secretary_text, heard_text, action_type, action_destination, brain,
                           stt_ms, brain_ms, tts_ms, total_ms, recording_file, reply_file)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)""",
                    [
                        (
                            call_row,
                            record.domain_uuid,
                            t.index,
                            t.at,
                            t.caller_text,
                            t.secretary_text,
                            t.heard_text,
                            t.action.type.value,
                            t.action.destination,
                            t.brain,
                            t.stt_ms,
                            t.brain_ms,
                            t.tts_ms,
                            t.total_ms,
                            t.recording_file,
                            t.reply_file,
                        )
                        for t in record.turns
                    ],
                )
        except asyncpg.ForeignKeyViolationError as exc:
            raise UnknownDomain(f"unknown domain {record.domain_uuid}") from exc

    async def list_calls(
        self,
        domain_uuid: UUID,
        *,
        started_from: datetime | None = None,
        started_to: datetime | None = None,
        outcome: str | None = None,
        transport: str | None = None,
        caller: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[tuple[CallRecord, int]]:
        """Newest first, each without its turns (`turns` is empty) but with its turn count."""
        pattern = None
        if caller:
            pattern = "%" + caller.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._db.fetch(
            """SELECT call_uuid, domain_uuid, transport, coalesce(caller_id_number, '') AS caller_id_number,
                      coalesce(caller_id_name, '') AS caller_id_name,
                      coalesce(destination_number, '') AS destination_number, start_stamp, end_stamp,
                      duration_ms, turn_count, outcome, outcome_destination, hangup_cause, usage
               FROM v_ai_calls
               WHERE domain_uuid = $1
                 AND ($2::timestamptz IS NULL OR start_stamp >= $2)
                 AND ($3::timestamptz IS NULL OR start_stamp < $3)
                 AND ($4::text IS NULL OR outcome = $4)
                 AND ($5::text IS NULL OR caller_id_number ILIKE $5 OR caller_id_name ILIKE $5)
                 AND ($8::text IS NULL OR transport = $8)
               ORDER BY start_stamp DESC, call_uuid OFFSET $6 LIMIT $7""",
            domain_uuid,
            started_from,
            started_to,
            outcome,
            pattern,
            offset,
            limit,
            transport,
        )
        return [
            (
                CallRecord(
                    call_uuid=r["call_uuid"],
                    domain_uuid=r["domain_uuid"],
                    transport=r["transport"],
                    caller_id_number=r["caller_id_number"],
                    caller_id_name=r["caller_id_name"],
                    destination_number=r["destination_number"],
                    started_at=r["start_stamp"],
                    ended_at=r["end_stamp"],
                    duration_ms=r["duration_ms"],
                    outcome=r["outcome"],
                    outcome_destination=r["outcome_destination"],
                    hangup_cause=r["hangup_cause"],
                    usage=json.loads(r["usage"]) if isinstance(r["usage"], str) else r["usage"],
                    turns=[],
                ),
                r["turn_count"],
            )
            for r in rows
        ]

    async def usage_totals(self, domain_uuid: UUID, since: datetime | None = None) -> dict[str, float]:
        rows = await self._db.fetch(
            """SELECT usage_item.key, sum(usage_item.value::float8) AS total
               FROM v_ai_calls, jsonb_each_text(v_ai_calls.usage) AS usage_item
               WHERE v_ai_calls.domain_uuid = $1 AND ($2::timestamptz IS NULL OR v_ai_calls.start_stamp >= $2)
               GROUP BY usage_item.key""",
            domain_uuid,
            since,
        )
        return {row["key"]: round(float(row["total"]), 3) for row in rows}

    async def get(self, domain_uuid: UUID, call_uuid: UUID) -> CallRecord | None:
        call = await self._db.fetchrow(
            """SELECT ai_call_uuid, call_uuid, domain_uuid, transport,
                      coalesce(caller_id_number, '') AS caller_id_number,
                      coalesce(caller_id_name, '') AS caller_id_name,
                      coalesce(destination_number, '') AS destination_number, start_stamp, end_stamp, duration_ms,
                      outcome, outcome_destination, hangup_cause, usage
               FROM v_ai_calls WHERE domain_uuid = $1 AND call_uuid = $2""",
            domain_uuid,
            call_uuid,
        )
        if call is None:
            return None
        turns = await self._db.fetch(
            """SELECT turn_index, turn_stamp, coalesce(caller_text, '') AS caller_text,
                      coalesce(secretary_text, '') AS secretary_text, heard_text, action_type,
                      action_destination, brain, stt_ms, brain_ms, tts_ms, total_ms, recording_file, reply_file
               FROM v_ai_call_turns WHERE ai_call_uuid = $1 AND domain_uuid = $2 ORDER BY turn_index""",
            call["ai_call_uuid"],
            domain_uuid,
        )
        return CallRecord(
            call_uuid=call["call_uuid"],
            domain_uuid=call["domain_uuid"],
            transport=call["transport"],
            caller_id_number=call["caller_id_number"],
            caller_id_name=call["caller_id_name"],
            destination_number=call["destination_number"],
            started_at=call["start_stamp"],
            ended_at=call["end_stamp"],
            duration_ms=call["duration_ms"],
            outcome=call["outcome"],
            outcome_destination=call["outcome_destination"],
            hangup_cause=call["hangup_cause"],
            usage=json.loads(call["usage"]) if isinstance(call["usage"], str) else call["usage"],
            turns=[
                TurnRecord(
                    index=t["turn_index"],
                    at=t["turn_stamp"],
                    caller_text=t["caller_text"],
                    secretary_text=t["secretary_text"],
                    heard_text=t["heard_text"],
                    action=Action(type=t["action_type"], destination=t["action_destination"]),
                    brain=t["brain"],
                    stt_ms=t["stt_ms"],
                    brain_ms=t["brain_ms"],
                    tts_ms=t["tts_ms"],
                    total_ms=t["total_ms"],
                    recording_file=t["recording_file"],
                    reply_file=t["reply_file"],
                )
                for t in turns
            ],
        )


class SpillingCallRecordStore:
    """PostgreSQL, and while it is unavailable the spill: a call that ends during an outage keeps its record,
    and `save_spilled` (run in the background and at start-up) moves it in. Saving is an upsert on
    (domain_uuid, call_uuid) that replaces the turns, so a retry never makes a second call or repeats a turn."""

    def __init__(self, database: PostgresCallRecordStore, spill: FileCallRecordStore) -> None:
        self._db = database
        self._spill = spill

    async def save(self, record: CallRecord) -> None:
        try:
            await self._db.save(record)
        except DependencyUnavailable as exc:
            await self._spill.save(record)
            log.warning("call_record_spilled", call_uuid=str(record.call_uuid), reason=exc.message)

    async def save_spilled(self) -> None:
        for record in await self._spill.take_all():
            try:
                await self._db.save(record)  # raises while PostgreSQL is still down: tried again on the next pass
            except UnknownDomain:
                log.warning("call_record_dropped", call_uuid=str(record.call_uuid), reason="the domain is gone")
            else:
                log.info("call_record_unspilled", call_uuid=str(record.call_uuid))
            await self._spill.remove(record)

    async def get(self, domain_uuid: UUID, call_uuid: UUID) -> CallRecord | None:
        return await self._db.get(domain_uuid, call_uuid)

    async def usage_totals(self, domain_uuid: UUID, since: datetime | None = None) -> dict[str, float]:
        return await self._db.usage_totals(domain_uuid, since)
