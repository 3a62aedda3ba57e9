"""Call records survive a PostgreSQL outage: a call that ends while it is down has its record kept in
`data_dir/calls-spill/` and saved when PostgreSQL is back (in the background, and at start-up), once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import connect

from bridge.protocol import StreamAudio, parse_server_message
from secretary.calls.models import CallRecord, TurnRecord
from secretary.calls.record_store import FileCallRecordStore, PostgresCallRecordStore
from secretary.db.database import Database
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support.bridge import ACME, live_bridge
from tests.support.tcp_proxy import tcp_proxy_for

pytestmark = pytest.mark.timeout(60)
TONE = b"\x00\x10\x00\xf0" * 80  # 20 ms at 8 kHz


async def _until(check: Callable[[], Any], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _rows(url: str, call_uuid: uuid.UUID) -> tuple[int, int]:
    """(calls, turns) PostgreSQL holds for the call."""
    conn = await asyncpg.connect(url)
    try:
        calls = await conn.fetchval("SELECT count(*) FROM v_ai_calls WHERE call_uuid = $1", call_uuid)
        turns = await conn.fetchval(
            "SELECT count(*) FROM v_ai_call_turns t JOIN v_ai_calls c USING (ai_call_uuid) WHERE c.call_uuid = $1",
            call_uuid,
        )
        return int(calls), int(turns)
    finally:
        await conn.close()


async def test_a_realtime_call_that_ends_during_a_postgresql_outage_keeps_its_record(
    make_settings: Callable[..., Settings], models: LocalModels, fusionpbx_url: str
) -> None:
    call_uuid = uuid.uuid4()
    with tcp_proxy_for(fusionpbx_url) as proxy:
        async with live_bridge(
            make_settings,
            models,
            with_esl=False,
            engine="echo",
            database_url=proxy.url_for(fusionpbx_url),
        ) as bridge:
            async with connect(f"{bridge.url}/stream/{ACME}/{call_uuid}") as ws:
                await ws.send('{"sample_rate":8000}')
                async with asyncio.timeout(10):  # the call is up: the echo engine plays the caller back
                    for _ in range(10):
                        await ws.send(TONE)
                        await asyncio.sleep(0.02)
                    while not isinstance(parse_server_message(str(await ws.recv())), StreamAudio):
                        pass
                session = bridge.server.sessions[str(call_uuid)]
                proxy.cut()
            async with asyncio.timeout(10):
                await session.finished.wait()
            spill = bridge.runtime.settings.data_dir / "calls-spill" / ACME / f"{call_uuid}.json"
            assert await asyncio.to_thread(spill.is_file)

            proxy.resume()
            bridge.runtime.start_background()  # its first pass saves what waits in the spill

            async def saved() -> bool:
                return (await _rows(fusionpbx_url, call_uuid))[0] == 1

            await _until(saved)
            await _until(lambda: asyncio.to_thread(lambda: not spill.exists()))
    record = await PostgresCallRecordStore(database := Database(fusionpbx_url)).get(uuid.UUID(ACME), call_uuid)
    await database.close()
    assert record is not None and record.transport == "realtime"


async def test_spilled_records_are_saved_at_start_up_and_never_twice(
    make_settings: Callable[..., Settings], models: LocalModels, fusionpbx_url: str
) -> None:
    """A record spilled although PostgreSQL did commit it (the answer was lost on the way) is saved again at
    start-up: one call, its turns once."""
    now = datetime.now(UTC)
    record = CallRecord(
        call_uuid=uuid.uuid4(),
        domain_uuid=uuid.UUID(ACME),
        transport="turn",
        caller_id_number="5550100",
        caller_id_name="Robin",
        destination_number="5000",
        started_at=now,
        ended_at=now,
        duration_ms=0,
        outcome="hangup",
        outcome_destination=None,
        hangup_cause="NORMAL_CLEARING",
        turns=[TurnRecord(index=1, at=now, caller_text="hello"), TurnRecord(index=2, at=now, caller_text="bye")],
        usage={},
    )
    database = Database(fusionpbx_url)
    await PostgresCallRecordStore(database).save(record)
    await database.close()
    settings = make_settings(database_url=fusionpbx_url)
    spill = FileCallRecordStore(settings.data_dir / "calls-spill")
    await spill.save(record)

    runtime = Runtime.create(settings, models=models)
    try:
        runtime.start_background()

        async def moved_in() -> bool:
            return await spill.take_all() == []

        await _until(moved_in)
    finally:
        await runtime.close()
    assert await _rows(fusionpbx_url, record.call_uuid) == (1, 2)
