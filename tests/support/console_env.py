"""A served admin listener (with the console) over a FusionPBX-shaped database of its own, for the console's
tests: an invented tenant beside the fixture's (no secretary yet; its extensions and ring group), a call with
a recording and a reply, an earlier realtime call of the same caller (the list filters by mode), a message
whose e-mail gave up, keys for each; and where Debian's Chromium is."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ivr_service.app import create_admin_app, create_app
from secretary.access.api_keys import ApiKeyStore
from secretary.calls.models import CallRecord, TurnRecord
from secretary.calls.record_store import PostgresCallRecordStore
from secretary.conversation.actions import Action
from secretary.credentials.secret_box import generate_secret_key
from secretary.db.database import Database
from secretary.messages.models import Delivery, DeliveryChannel, DeliveryState, TakenMessage
from secretary.messages.store import PostgresMessageStore
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support.admin_env import ACME, GLOBEX
from tests.support.threaded_app import serve_apps

CHROMIUM = "/usr/bin/chromium"
UMBRELLA = uuid.UUID("d0000000-0042-4000-8000-000000000042")  # invented here: enabled, no secretary yet
FUSIONPBX_SECRET = "console-test-secret-" + uuid.uuid4().hex


@dataclass
class ConsoleService:
    url: str
    keys: dict[str, str]
    acme_call: uuid.UUID
    database_url: str
    v1_url: str  # the same service's v1 listener (FreeSWITCH's): calls started there are live in the console
    fusionpbx_cache: Path


async def _seed(url: str, spool: Path) -> tuple[dict[str, str], uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled)
               VALUES ($1, 'umbrella.example.org', 'true')""",
            UMBRELLA,
        )
        for number, name in (("201", "Alice Ng"), ("202", "Bob Ruiz")):
            await conn.execute(
                """INSERT INTO v_extensions (extension_uuid, domain_uuid, extension, effective_caller_id_name, enabled)
                   VALUES ($1, $2, $3, $4, 'true')""",
                uuid.uuid4(),
                UMBRELLA,
                number,
                name,
            )
        await conn.execute(
            """INSERT INTO v_ring_groups (ring_group_uuid, domain_uuid, ring_group_name, ring_group_extension,
                   ring_group_enabled) VALUES ($1, $2, 'Umbrella Support', '300', 'true')""",
            uuid.uuid4(),
            UMBRELLA,
        )
    finally:
        await conn.close()
    database = Database(url)
    try:
        keys = ApiKeyStore(database)
        created = {
            "super": (await keys.create("superadmin", None, "console test"))[0],
            "acme": (await keys.create("domain", ACME, "console test"))[0],
            "globex": (await keys.create("domain", GLOBEX, "console test"))[0],
            "umbrella": (await keys.create("domain", UMBRELLA, "console test"))[0],
        }
        call_uuid = uuid.uuid4()
        inbox = spool / "in" / str(ACME) / str(call_uuid)
        inbox.mkdir(parents=True)
        (inbox / "turn-001.wav").write_bytes(wav_bytes(Pcm(b"\x10\x00\xf0\xff" * 4000, 8000)))
        outbox = spool / "out" / str(ACME) / str(call_uuid)
        outbox.mkdir(parents=True)
        (outbox / "reply-001.wav").write_bytes(wav_bytes(Pcm(b"\x00\x10\x00\xf0" * 16000, 16000)))  # 2 s
        start = datetime.now(UTC) - timedelta(minutes=3)
        turn = TurnRecord(
            index=1,
            at=start,
            caller_text="when are you open on saturday",
            secretary_text="We are open on Saturday from ten to two, and closed on Sunday.",
            heard_text="We are open on Saturday from ten to two,",
            action=Action.continue_(),
            brain="front_desk",
            stt_ms=310,
            brain_ms=4,
            tts_ms=120,
            total_ms=460,
            recording_file=str(inbox / "turn-001.wav"),
            reply_file=str(outbox / "reply-001.wav"),
        )
        await PostgresCallRecordStore(database).save(
            CallRecord(
                call_uuid=call_uuid,
                domain_uuid=ACME,
                transport="turn",
                caller_id_number="5550199",
                caller_id_name="Dana Ortiz",
                destination_number="5000",
                started_at=start,
                ended_at=start + timedelta(seconds=40),
                duration_ms=40000,
                outcome="hangup",
                outcome_destination=None,
                hangup_cause="NORMAL_CLEARING",
                turns=[turn],
                usage={"tts_chars.piper": 64.0},
            )
        )
        await PostgresCallRecordStore(database).save(  # the same caller, the other mode: the list filters on it
            CallRecord(
                call_uuid=uuid.uuid4(),
                domain_uuid=ACME,
                transport="realtime",
                caller_id_number="5550199",
                caller_id_name="Dana Ortiz",
                destination_number="5000",
                started_at=start - timedelta(hours=2),
                ended_at=start - timedelta(hours=2) + timedelta(seconds=25),
                duration_ms=25000,
                outcome="transfer",
                outcome_destination="1001",
                hangup_cause="NORMAL_CLEARING",
                turns=[],
                usage={},
            )
        )
        message = TakenMessage(
            domain_uuid=ACME,
            call_uuid=call_uuid,
            caller_id_number="5550199",
            caller_id_name="Dana Ortiz",
            transcript="Please call me back about the invoice from March.",
            deliveries=[
                Delivery(
                    channel=DeliveryChannel.EMAIL,
                    destination="billing@acme.example.com",
                    state=DeliveryState.FAILED,
                    attempts=5,
                    last_error="550 mailbox unavailable",
                )
            ],
        )
        await PostgresMessageStore(database).add(message)
    finally:
        await database.close()
    return created, call_uuid


@contextmanager
def console_service(database_url: str, tmp: Path, models: LocalModels, **settings: Any) -> Iterator[ConsoleService]:
    spool = tmp / "spool"
    keys, call_uuid = asyncio.run(_seed(database_url, spool))
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "secretaries_file": EXAMPLE_SECRETARIES,
        "data_dir": tmp / "data",
        "spool": {"dir": spool},
        "config_cache_s": 0,
        "dependency_timeout_s": 10.0,  # generous: a busy box must not turn a slow query into a 503
        "secret_key": generate_secret_key(),
        "messages": {"enabled": False},
        "admin": {"port": 0, "console": {"fusionpbx_secret": FUSIONPBX_SECRET}},
        "fusionpbx": {"cache_dir": tmp / "fusionpbx-cache"},
    }
    (tmp / "fusionpbx-cache").mkdir()
    runtime = Runtime.create(Settings(**(values | settings)), models=models)
    with serve_apps(create_admin_app(runtime, own_runtime=True), create_app(runtime)) as (url, v1_url):
        yield ConsoleService(url, keys, call_uuid, database_url, v1_url, tmp / "fusionpbx-cache")


def chromium_or_skip() -> str:
    """`make test` installs Debian's chromium (tests/services.sh); a machine without it skips, saying why."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return CHROMIUM
