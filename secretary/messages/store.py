"""Where taken messages are kept: PostgreSQL (`v_ai_messages`, `v_ai_message_deliveries`) or JSON files.

Deliveries are *claimed* with a lease (their next attempt is pushed `lease_s` ahead) so several couriers, or
one that crashed mid-delivery, never lose a message: an unfinished claim simply comes due again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from uuid import UUID

import asyncpg

from secretary.db.database import Database
from secretary.errors import UnknownDomain
from secretary.messages.models import Delivery, DeliveryChannel, DeliveryState, MessageStatus, TakenMessage
from secretary.speech.tts_cache import write_atomically


class MessageStore(Protocol):
    async def add(self, message: TakenMessage) -> None: ...

    async def get(self, domain_uuid: UUID, message_uuid: UUID) -> TakenMessage | None: ...

    async def list_messages(
        self, domain_uuid: UUID, *, status: MessageStatus | None = None, offset: int = 0, limit: int = 50
    ) -> list[TakenMessage]: ...

    async def set_status(self, domain_uuid: UUID, message_uuid: UUID, status: MessageStatus) -> bool: ...

    async def redeliver(self, domain_uuid: UUID, message_uuid: UUID) -> bool: ...

    async def claim_due(self, lease_s: float, limit: int) -> list[tuple[TakenMessage, Delivery]]: ...

    async def record_attempt(self, message: TakenMessage, delivery: Delivery) -> None: ...


class PostgresMessageStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def add(self, message: TakenMessage) -> None:
        try:
            async with self._db.connection() as conn, conn.transaction():
                await conn.execute(
                    """INSERT INTO v_ai_messages (ai_message_uuid, domain_uuid, call_uuid, caller_id_number,
                           caller_id_name, message_for, caller_name, callback_number, transcript, audio_file,
                           message_status, insert_date)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                       ON CONFLICT (ai_message_uuid) DO NOTHING""",
                    message.message_uuid,
                    message.domain_uuid,
                    message.call_uuid,
                    message.caller_id_number,
                    message.caller_id_name,
                    message.recipient,
                    message.caller_name,
                    message.callback_number,
                    message.transcript,
                    message.audio_file,
                    message.status,
                    message.created_at,
                )
                await conn.executemany(
                    """INSERT INTO v_ai_message_deliveries (ai_message_uuid, domain_uuid, delivery_channel,
                           delivery_destination, delivery_state, attempts, next_attempt_date, last_error,
                           delivered_date)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                       ON CONFLICT (ai_message_uuid, delivery_channel) DO NOTHING""",
                    [
                        (
                            message.message_uuid,
                            message.domain_uuid,
                            d.channel.value,
                            d.destination,
                            d.state.value,
                            d.attempts,
                            d.next_attempt_at,
                            d.last_error,
                            d.delivered_at,
                        )
                        for d in message.deliveries
                    ],
                )
        except asyncpg.ForeignKeyViolationError as exc:
            raise UnknownDomain(f"unknown domain {message.domain_uuid}") from exc

    async def _load(self, rows: list[asyncpg.Record]) -> list[TakenMessage]:
        if not rows:
            return []
        deliveries = await self._db.fetch(
            """SELECT ai_message_uuid, delivery_channel, delivery_destination, delivery_state, attempts,
                      next_attempt_date, last_error, delivered_date
               FROM v_ai_message_deliveries WHERE ai_message_uuid = ANY($1::uuid[])
               ORDER BY delivery_channel""",
            [r["ai_message_uuid"] for r in rows],
        )
        by_message: dict[UUID, list[Delivery]] = {}
        for d in deliveries:
            by_message.setdefault(d["ai_message_uuid"], []).append(
                Delivery(
                    channel=DeliveryChannel(d["delivery_channel"]),
                    destination=d["delivery_destination"],
                    state=DeliveryState(d["delivery_state"]),
                    attempts=d["attempts"],
                    next_attempt_at=d["next_attempt_date"],
                    last_error=d["last_error"],
                    delivered_at=d["delivered_date"],
                )
            )
        return [
            TakenMessage(
                message_uuid=r["ai_message_uuid"],
                domain_uuid=r["domain_uuid"],
                call_uuid=r["call_uuid"],
                caller_id_number=r["caller_id_number"],
                caller_id_name=r["caller_id_name"],
                recipient=r["message_for"],
                caller_name=r["caller_name"],
                callback_number=r["callback_number"],
                transcript=r["transcript"],
                audio_file=r["audio_file"],
                status=r["message_status"],
                handled_at=r["handled_date"],
                created_at=r["insert_date"],
                deliveries=by_message.get(r["ai_message_uuid"], []),
            )
            for r in rows
        ]

    _COLUMNS = """ai_message_uuid, domain_uuid, call_uuid, coalesce(caller_id_number, '') AS caller_id_number,
                  coalesce(caller_id_name, '') AS caller_id_name, coalesce(message_for, '') AS message_for,
                  coalesce(caller_name, '') AS caller_name, coalesce(callback_number, '') AS callback_number,
                  coalesce(transcript, '') AS transcript,
                  audio_file, message_status, handled_date, insert_date"""

    async def get(self, domain_uuid: UUID, message_uuid: UUID) -> TakenMessage | None:
        rows = await self._db.fetch(
            f"SELECT {self._COLUMNS} FROM v_ai_messages WHERE domain_uuid = $1 AND ai_message_uuid = $2",
            domain_uuid,
            message_uuid,
        )
        found = await self._load(rows)
        return found[0] if found else None

    async def list_messages(
        self, domain_uuid: UUID, *, status: MessageStatus | None = None, offset: int = 0, limit: int = 50
    ) -> list[TakenMessage]:
        rows = await self._db.fetch(
            f"""SELECT {self._COLUMNS} FROM v_ai_messages
                WHERE domain_uuid = $1 AND ($2::text IS NULL OR message_status = $2)
                ORDER BY insert_date DESC, ai_message_uuid OFFSET $3 LIMIT $4""",
            domain_uuid,
            status,
            offset,
            limit,
        )
        return await self._load(rows)

    async def set_status(self, domain_uuid: UUID, message_uuid: UUID, status: MessageStatus) -> bool:
        result = await self._db.execute(
            """UPDATE v_ai_messages SET message_status = $3,
                   handled_date = CASE WHEN $3 = 'handled' THEN coalesce(handled_date, now()) END
               WHERE domain_uuid = $1 AND ai_message_uuid = $2""",
            domain_uuid,
            message_uuid,
            status,
        )
        return result.endswith(" 1")

    async def redeliver(self, domain_uuid: UUID, message_uuid: UUID) -> bool:
        if await self.get(domain_uuid, message_uuid) is None:
            return False
        await self._db.execute(
            """UPDATE v_ai_message_deliveries SET delivery_state = 'pending', attempts = 0,
                   next_attempt_date = now()
               WHERE domain_uuid = $1 AND ai_message_uuid = $2 AND delivery_state = 'failed'""",
            domain_uuid,
            message_uuid,
        )
        return True

    async def claim_due(self, lease_s: float, limit: int) -> list[tuple[TakenMessage, Delivery]]:
        async with self._db.connection() as conn, conn.transaction():
            claimed = await conn.fetch(
                """WITH due AS (
                       SELECT ai_message_delivery_uuid FROM v_ai_message_deliveries
                       WHERE delivery_state = 'pending' AND next_attempt_date <= now()
                       ORDER BY next_attempt_date LIMIT $1 FOR UPDATE SKIP LOCKED)
                   UPDATE v_ai_message_deliveries d
                   SET next_attempt_date = now() + make_interval(secs => $2)
                   FROM due WHERE d.ai_message_delivery_uuid = due.ai_message_delivery_uuid
                   RETURNING d.ai_message_uuid, d.delivery_channel""",
                limit,
                lease_s,
            )
        if not claimed:
            return []
        rows = await self._db.fetch(
            f"SELECT {self._COLUMNS} FROM v_ai_messages WHERE ai_message_uuid = ANY($1::uuid[])",
            list({c["ai_message_uuid"] for c in claimed}),
        )
        messages = {m.message_uuid: m for m in await self._load(rows)}
        due = []
        for c in claimed:
            message = messages.get(c["ai_message_uuid"])
            delivery = message.delivery(DeliveryChannel(c["delivery_channel"])) if message else None
            if message is not None and delivery is not None:
                due.append((message, delivery))
        return due

    async def record_attempt(self, message: TakenMessage, delivery: Delivery) -> None:
        await self._db.execute(
            """UPDATE v_ai_message_deliveries SET delivery_state = $3, attempts = $4, next_attempt_date = $5,
                   last_error = $6, delivered_date = $7
               WHERE ai_message_uuid = $1 AND delivery_channel = $2""",
            message.message_uuid,
            delivery.channel.value,
            delivery.state.value,
            delivery.attempts,
            delivery.next_attempt_at,
            delivery.last_error,
            delivery.delivered_at,
        )


class FileMessageStore:
    """`<dir>/<domain_uuid>/<message_uuid>.json`: the embedded default (one process), and the spill-over
    where messages wait when PostgreSQL is down at the moment they are taken."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = asyncio.Lock()

    def _path(self, domain_uuid: UUID, message_uuid: UUID) -> Path:
        return self.directory / str(domain_uuid) / f"{message_uuid}.json"

    def _read(self, path: Path) -> TakenMessage | None:
        try:
            return TakenMessage.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def _write(self, message: TakenMessage) -> None:
        write_atomically(self._path(message.domain_uuid, message.message_uuid), message.model_dump_json().encode())

    def _all(self) -> list[TakenMessage]:
        found = []
        for path in self.directory.glob("*/*.json"):
            message = self._read(path)
            if message is not None:
                found.append(message)
        return found

    async def add(self, message: TakenMessage) -> None:
        """Like PostgreSQL's: a message already here (a retried turn) is kept as it is."""
        async with self._lock:
            if not await asyncio.to_thread(self._path(message.domain_uuid, message.message_uuid).exists):
                await asyncio.to_thread(self._write, message)

    async def get(self, domain_uuid: UUID, message_uuid: UUID) -> TakenMessage | None:
        return await asyncio.to_thread(self._read, self._path(domain_uuid, message_uuid))

    async def list_messages(
        self, domain_uuid: UUID, *, status: MessageStatus | None = None, offset: int = 0, limit: int = 50
    ) -> list[TakenMessage]:
        def scan() -> list[TakenMessage]:
            found = [m for p in (self.directory / str(domain_uuid)).glob("*.json") if (m := self._read(p))]
            return [m for m in found if status is None or m.status == status]

        messages = sorted(await asyncio.to_thread(scan), key=lambda m: m.created_at, reverse=True)
        return messages[offset : offset + limit]

    async def set_status(self, domain_uuid: UUID, message_uuid: UUID, status: MessageStatus) -> bool:
        async with self._lock:
            message = await self.get(domain_uuid, message_uuid)
            if message is None:
                return False
            message.status = status
            message.handled_at = (message.handled_at or datetime.now(UTC)) if status == "handled" else None
            await asyncio.to_thread(self._write, message)
            return True

    async def redeliver(self, domain_uuid: UUID, message_uuid: UUID) -> bool:
        async with self._lock:
            message = await self.get(domain_uuid, message_uuid)
            if message is None:
                return False
            for d in message.deliveries:
                if d.state is DeliveryState.FAILED:
                    d.state, d.attempts, d.next_attempt_at = DeliveryState.PENDING, 0, datetime.now(UTC)
            await asyncio.to_thread(self._write, message)
            return True

    async def claim_due(self, lease_s: float, limit: int) -> list[tuple[TakenMessage, Delivery]]:
        async with self._lock:
            now = datetime.now(UTC)
            due: list[tuple[TakenMessage, Delivery]] = []
            for message in await asyncio.to_thread(self._all):
                claimed = False
                for d in message.deliveries:
                    if d.state is DeliveryState.PENDING and d.next_attempt_at <= now and len(due) < limit:
                        d.next_attempt_at = now + timedelta(seconds=lease_s)
                        due.append((message, d))
                        claimed = True
                if claimed:
                    await asyncio.to_thread(self._write, message)
            return due

    async def record_attempt(self, message: TakenMessage, delivery: Delivery) -> None:
        async with self._lock:
            current = await self.get(message.domain_uuid, message.message_uuid)
            if current is None:
                return
            current.deliveries = [delivery if d.channel is delivery.channel else d for d in current.deliveries]
            await asyncio.to_thread(self._write, current)

    async def take_all(self) -> list[TakenMessage]:
        """Every message held here (the courier moves spilled messages into PostgreSQL, then `remove`s them)."""
        async with self._lock:
            messages = await asyncio.to_thread(self._all)
            return messages

    async def remove(self, message: TakenMessage) -> None:
        path = self._path(message.domain_uuid, message.message_uuid)
        await asyncio.to_thread(path.unlink, True)
