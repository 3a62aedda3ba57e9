"""Our tables inside FusionPBX's database (5.4 text flags and 5.5 booleans): migrations, the destinations a
secretary may transfer to, the dialplan installer, and the admin's CLI commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from lxml import etree

from secretary.access.api_keys import ApiKeyStore
from secretary.access.stream_tokens import derive_domain_token
from secretary.calls.record_store import PostgresCallRecordStore
from secretary.credentials.secret_box import SecretBox
from secretary.credentials.store import CredentialStore
from secretary.db.database import Database
from secretary.db.migrations import MigrationError, available_migrations, migrate, pending_migrations
from secretary.errors import BadInput, SecretaryDisabled
from secretary.fusionpbx.destinations import PbxDestinations
from secretary.fusionpbx.dialplan import APP_UUID, DialplanInstaller, DialplanRequest, build_xml, dialplan_uuid
from secretary.messages.store import PostgresMessageStore
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.support import databases
from tests.support.admin_env import ACME, GLOBEX

ROOT = Path(__file__).resolve().parent.parent
OUR_TABLES = {
    "v_ai_secretaries",
    "v_ai_secretary_directory",
    "v_ai_calls",
    "v_ai_call_turns",
    "v_ai_api_keys",
    "v_ai_provider_credentials",
    "v_ai_messages",
    "v_ai_message_deliveries",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE tablename LIKE 'v_ai_%'")
        return {r[0] for r in rows}
    finally:
        await conn.close()


@pytest.fixture(params=["5.4", "5.5"])
async def fresh_fusionpbx(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name, url = await databases.create_database(request.param)
    yield url
    await databases.drop_database(name)


async def test_migrations_apply_once_and_rows_follow_their_domain(fresh_fusionpbx: str) -> None:
    database = Database(fresh_fusionpbx)
    try:
        applied = await migrate(database)
        assert [m.version for m in applied] == [m.version for m in available_migrations()]
        assert await migrate(database) == []  # idempotent
        assert await _tables(fresh_fusionpbx) >= OUR_TABLES

        keys = ApiKeyStore(database)
        await keys.create("domain", GLOBEX, "globex admin")
        await keys.create("superadmin", None, "root")
        with pytest.raises(asyncpg.CheckViolationError):  # a superadmin key has no domain, a domain key has one
            await database.execute(
                "INSERT INTO v_ai_api_keys (key_scope, domain_uuid, key_prefix, key_hash) VALUES "
                "('superadmin', $1, 'x', 'y')",
                ACME,
            )
        await database.execute("DELETE FROM v_domains WHERE domain_uuid = $1", GLOBEX)
        remaining = await keys.list_keys()
        assert [k.scope for k in remaining] == ["superadmin"]  # globex's key went with its domain
    finally:
        await database.close()


async def test_a_database_without_v_domains_is_refused_and_left_untouched() -> None:
    name, url = await databases.create_database(None)
    database = Database(url)
    try:
        with pytest.raises(MigrationError, match="v_domains is missing"):
            await migrate(database)
        assert await _tables(url) == set()
    finally:
        await database.close()
        await databases.drop_database(name)


async def test_a_failing_migration_leaves_nothing_half_applied(fresh_fusionpbx: str) -> None:
    conn = await asyncpg.connect(fresh_fusionpbx)
    await conn.execute("CREATE TABLE v_ai_messages (in_the_way integer)")  # what 0003 wants to create
    database = Database(fresh_fusionpbx)
    try:
        with pytest.raises(MigrationError, match="migration 3"):
            await migrate(database)
        versions = [r[0] for r in await conn.fetch("SELECT version FROM v_ai_schema_migrations ORDER BY 1")]
        assert 3 not in versions and 1 in versions
        pending = [m.version for m in await pending_migrations(database)]  # what `voiceai doctor` reports
        assert pending == [m.version for m in available_migrations() if m.version >= 3]
        assert "v_ai_api_keys" not in await _tables(fresh_fusionpbx)  # created earlier in 0003, rolled back
        column = await conn.fetchval(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'v_ai_secretaries' AND column_name = 'messages'"
        )
        assert column is None
        await conn.execute("DROP TABLE v_ai_messages")
        assert 3 in [m.version for m in await migrate(database)]
    finally:
        await conn.close()
        await database.close()


# Columns that must keep NOT NULL though they have a default: filled by us on every write, never by a page.
_NOT_NULL_WITH_DEFAULT = {
    ("v_ai_calls", "usage"),
    ("v_ai_knowledge_documents", "document_chunk_count"),
    ("v_ai_knowledge_documents", "document_status"),
    ("v_ai_message_deliveries", "attempts"),
    ("v_ai_message_deliveries", "delivery_state"),
    ("v_ai_message_deliveries", "next_attempt_date"),
    ("v_ai_messages", "message_status"),
}


async def test_rows_saved_the_way_fusionpbx_saves_them_read_as_their_defaults(fresh_fusionpbx: str) -> None:
    """FusionPBX's database::save() writes NULL for an empty field (and, inserting, for a PHP false): every
    column with a default accepts it, and every reader takes NULL as that default."""
    database = Database(fresh_fusionpbx)
    try:
        await migrate(database)
        rows = await database.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_name LIKE 'v_ai_%' AND column_default IS NOT NULL AND is_nullable = 'NO'
                 AND column_name NOT LIKE '%uuid' AND column_name NOT IN ('insert_date', 'applied_date')"""
        )
        assert {(r[0], r[1]) for r in rows} == _NOT_NULL_WITH_DEFAULT
        # a secretary and its directory as a FusionPBX page would save them with every optional field empty
        secretary = await database.fetchval(
            """INSERT INTO v_ai_secretaries (ai_secretary_uuid, domain_uuid, secretary_name, company_name,
                   secretary_language, greeting, farewell, instructions, business_hours, fallback_destination,
                   max_turns, max_call_seconds, recording, faq, providers, playback_mode, secretary_enabled,
                   messages, insert_date, insert_user)
               VALUES (gen_random_uuid(), $1, null, null, null, null, null, null, null, '1001', null, null, null,
                       null, null, null, null, null, now(), null) RETURNING ai_secretary_uuid""",
            ACME,
        )
        await database.execute(
            """INSERT INTO v_ai_secretary_directory (ai_secretary_directory_uuid, domain_uuid, ai_secretary_uuid,
                   target_name, target_aliases, target_extension, target_description, target_order, insert_date)
               VALUES (gen_random_uuid(), $1, $2, 'Sales', null, '2000', null, null, now())""",
            ACME,
            secretary,
        )
        store = PostgresSecretaryStore(database)
        stored = await store.admin_get(ACME)
        defaults = SecretaryConfig(domain_uuid=ACME, domain_name="acme.example.com", fallback_destination="1001")
        assert stored is not None and not stored.enabled  # NULL is how save() inserts a false flag
        assert stored.model_dump(exclude={"enabled", "directory"}) == defaults.model_dump(
            exclude={"enabled", "directory"}
        )
        assert [(t.name, t.extension, t.aliases, t.description) for t in stored.directory] == [
            ("Sales", "2000", [], "")
        ]
        with pytest.raises(SecretaryDisabled):
            await store.by_uuid(ACME)
        await database.execute("UPDATE v_ai_secretaries SET secretary_enabled = 'true' WHERE domain_uuid = $1", ACME)
        assert (await store.by_uuid(ACME)).greeting == ""

        call_uuid = uuid4()
        call = await database.fetchval(
            """INSERT INTO v_ai_calls (domain_uuid, call_uuid, transport, caller_id_number, caller_id_name,
                   destination_number, start_stamp, end_stamp, duration_ms, turn_count, outcome)
               VALUES ($1, $2, 'turn', null, null, null, now(), now(), 10, 1, 'hangup') RETURNING ai_call_uuid""",
            ACME,
            call_uuid,
        )
        await database.execute(
            """INSERT INTO v_ai_call_turns (ai_call_uuid, domain_uuid, turn_index, turn_stamp, caller_text,
                   secretary_text, action_type) VALUES ($1, $2, 0, now(), null, null, 'hangup')""",
            call,
            ACME,
        )
        record = await PostgresCallRecordStore(database).get(ACME, call_uuid)
        assert record is not None
        assert (record.caller_id_number, record.caller_id_name, record.destination_number) == ("", "", "")
        assert (record.turns[0].caller_text, record.turns[0].secretary_text) == ("", "")
        listed = await PostgresCallRecordStore(database).list_calls(ACME)
        assert listed[0][0].caller_id_name == ""

        message_uuid = uuid4()
        await database.execute(
            """INSERT INTO v_ai_messages (ai_message_uuid, domain_uuid, call_uuid, caller_id_number,
                   caller_id_name, transcript) VALUES ($1, $2, $3, null, null, null)""",
            message_uuid,
            ACME,
            call_uuid,
        )
        message = await PostgresMessageStore(database).get(ACME, message_uuid)
        assert message is not None and (message.caller_id_number, message.caller_id_name, message.transcript) == (
            "",
            "",
            "",
        )
        await database.execute(
            """UPDATE v_ai_messages SET message_for = null, caller_name = null, callback_number = null
               WHERE ai_message_uuid = $1""",
            message_uuid,
        )
        message = await PostgresMessageStore(database).get(ACME, message_uuid)
        assert message is not None and (message.recipient, message.caller_name, message.callback_number) == ("", "", "")

        await database.execute(
            """INSERT INTO v_ai_api_keys (key_scope, domain_uuid, key_prefix, key_hash, key_description, key_enabled)
               VALUES ('domain', $1, 'vai_x', 'hash', null, null)""",
            ACME,
        )
        [key] = await ApiKeyStore(database).list_keys(ACME)
        assert key.description == "" and not key.enabled
        await database.execute(
            """INSERT INTO v_ai_provider_credentials (domain_uuid, credential_name, credential_description,
                   encrypted_secret, secret_hint) VALUES ($1, 'openai', null, 'x', null)""",
            ACME,
        )
        [credential] = await CredentialStore(database, SecretBox(None)).list(ACME)
        assert (credential.description, credential.hint) == ("", "")
    finally:
        await database.close()


async def test_destinations_follow_the_fusionpbx_flags(fresh_fusionpbx: str) -> None:
    database = Database(fresh_fusionpbx)
    try:
        destinations = PbxDestinations(database)
        acme = {d.number: d for d in await destinations.list_destinations(ACME)}
        assert set(acme) == {"1001", "1002", "1003", "1004", "2000", "3000", "*991004"}
        assert acme["1004"].name == "Dr. Miller" and acme["2000"].name == "Sales Team"
        # a disabled extension and ring group, written the way FusionPBX writes flags in either version
        await database.execute(
            "UPDATE v_extensions SET enabled = 'false' WHERE domain_uuid = $1 AND extension = '1003'", ACME
        )
        await database.execute("UPDATE v_ring_groups SET ring_group_enabled = 'false' WHERE domain_uuid = $1", ACME)
        await database.execute(
            "UPDATE v_extensions SET number_alias = '203' WHERE domain_uuid = $1 AND extension = '1002'", ACME
        )
        assert await destinations.unknown_numbers(ACME, ["1002", "1003", "2000", "203", "9999"]) == {
            "1003",
            "2000",
            "9999",
        }
        # the same numbers in another domain are that domain's own
        assert "1003" in {d.number for d in await destinations.list_destinations(GLOBEX)}
    finally:
        await database.close()


def test_dialplan_xml_is_built_escaped_and_validated() -> None:
    request = DialplanRequest(
        ACME,
        "acme.example.com",
        "5000",
        "realtime",
        "1001",
        bridge_url="ws://10.0.0.5:8085",
        bridge_token="s3cret-token",
        sample_rate=8000,
    )
    root = etree.fromstring(build_xml(request).encode())
    actions = [(a.get("application"), a.get("data")) for a in root.iter("action")]
    assert root.get("continue") == "false" and root.get("uuid") == str(dialplan_uuid(ACME, "5000"))
    # the script streams, and goes on turn-based (voiceai_url) or to the fallback when the bridge fails it
    assert actions[-1] == ("lua", "secretary_ai.lua")
    for setting in (
        "voiceai_mode=realtime",
        "voiceai_bridge_url=ws://10.0.0.5:8085",
        "voiceai_sample_rate=8000",
        "voiceai_url=http://127.0.0.1:8086",
        "voiceai_fallback=1001",
        'STREAM_EXTRA_HEADERS={"Authorization":"Bearer s3cret-token"}',
    ):
        assert ("set", setting) in actions
    assert not [app for app, _ in actions if app in ("park", "transfer")]  # nothing waits in silence

    turn = etree.fromstring(build_xml(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001")).encode())
    assert [(a.get("application"), a.get("data")) for a in turn.iter("action")][-3:] == [
        ("set", "voiceai_url=http://127.0.0.1:8086"),
        ("set", "voiceai_timeout=20"),
        ("lua", "secretary_ai.lua"),
    ]
    for bad in (
        {"extension": "50 00"},
        {"extension": "5000$"},
        {"fallback": "1001 XML evil"},
        {"bridge_token": 'a"b'},
        {"ivr_url": "http://x y"},
        {"spool_dir": "/var/../etc"},
        {"spool_dir": "relative/spool"},
    ):
        with pytest.raises(BadInput):
            build_xml(
                DialplanRequest(
                    **(
                        {
                            "domain_uuid": ACME,
                            "domain_name": "acme.example.com",
                            "extension": "5000",
                            "mode": "realtime",
                            "fallback": "1001",
                        }
                        | bad
                    )
                )
            )


async def test_dialplan_install_is_idempotent_and_uninstall_removes_it(fresh_fusionpbx: str) -> None:
    database = Database(fresh_fusionpbx)
    installer = DialplanInstaller(database)
    try:
        first = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001"))
        assert first.created
        again = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "realtime", "1001", order=90))
        assert again.dialplan_uuid == first.dialplan_uuid and not again.created
        # what FusionPBX's XML handler selects for the context, in order
        rows = await database.fetch(
            """SELECT dialplan_uuid, app_uuid, dialplan_name, dialplan_number, dialplan_continue::text,
                      dialplan_xml, dialplan_order FROM v_dialplans
               WHERE dialplan_context = 'acme.example.com' AND dialplan_enabled::text = 'true'
               ORDER BY dialplan_order"""
        )
        assert [r["dialplan_number"] for r in rows] == ["5000", "2000"]
        ours = rows[0]
        assert ours["dialplan_uuid"] == first.dialplan_uuid
        assert ours["app_uuid"] == APP_UUID and ours["dialplan_continue"] == "false" and ours["dialplan_order"] == 90
        assert "voiceai_mode=realtime" in ours["dialplan_xml"]
        assert await installer.conflicts(ACME, "1002") == ["extension 1002"]
        assert await installer.conflicts(ACME, "5000") == []

        assert await installer.uninstall(ACME, "5000")
        assert not await installer.uninstall(ACME, "5000")
        assert await database.fetchval("SELECT count(*) FROM v_dialplans WHERE app_uuid = $1", APP_UUID) == 0
        assert await database.fetchval("SELECT count(*) FROM v_dialplans") == 3  # FusionPBX's own rows untouched
    finally:
        await database.close()


# What FusionPBX's destination pickers (Dialplan > Destinations, IVR options, time conditions) list from
# v_dialplans, per app/dialplans/app_config.php: the domain's enabled rows flagged as destinations, with a number.
# 5.4 compares the text flags with the literal 'true', 5.5 its boolean columns with true.
PICKER_FLAGS = {
    "5.4": "e.dialplan_destination = 'true' AND e.dialplan_enabled = 'true'",
    "5.5": "e.dialplan_destination = true AND e.dialplan_enabled = true",
}


async def _picker(database: Database, version: str, domain_uuid: UUID) -> list[tuple[str, str]]:
    rows = await database.fetch(
        f"""SELECT e.dialplan_number, e.dialplan_name || ' ' || e.dialplan_description
            FROM v_dialplans e JOIN v_domains d ON d.domain_uuid = e.domain_uuid
            WHERE e.domain_uuid = $1 AND {PICKER_FLAGS[version]} AND e.dialplan_number <> ''
            ORDER BY e.dialplan_order""",
        domain_uuid,
    )
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("version", ["5.4", "5.5"])
async def test_the_row_is_offered_in_fusionpbx_destination_pickers(version: str) -> None:
    name, url = await databases.create_database(version)
    database = Database(url)
    try:
        installer = DialplanInstaller(database)
        assert await _picker(database, version, ACME) == []  # the seeded ring group row is no destination
        installed = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001"))
        assert installed.destination
        assert await _picker(database, version, ACME) == [("5000", installed.label)]
        assert installed.label == "voiceai_secretary AI secretary (turn mode), installed by voiceai"
        # reinstalling (another mode) keeps it there; another domain's pickers never show it
        await database.execute("UPDATE v_dialplans SET dialplan_destination = 'false' WHERE app_uuid = $1", APP_UUID)
        again = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "realtime", "1001"))
        assert await _picker(database, version, ACME) == [("5000", again.label)]
        assert await _picker(database, version, GLOBEX) == []
    finally:
        await database.close()
        await databases.drop_database(name)


APP_CONFIG = ROOT / "fusionpbx" / "app" / "ai_secretary" / "app_config.php"


def _app_block() -> dict[str, Any]:
    """The app's destinations block as FusionPBX gets it: its app_config.php included (by php-cli)."""
    php = shutil.which("php")
    if php is None:
        pytest.skip("needs Debian's php-cli (apt-get install php-cli)")
    code = f"$x = 0; include {json.dumps(str(APP_CONFIG))}; echo json_encode($apps[0]['destinations']);"
    blocks = json.loads(subprocess.run([php, "-r", code], capture_output=True, text=True, check=True).stdout)
    assert len(blocks) == 1
    block: dict[str, Any] = blocks[0]
    return block


async def _app_picker(database: Database, block: dict[str, Any], domain: UUID, name: str) -> list[tuple[str, str]]:
    """What FusionPBX's destinations.php makes of the block: the query it builds (sql, where, order by, with
    ${domain_uuid} put in), then each row's action and label, ${<field key>} filled from the column so named."""
    sql = f"{block['sql'].strip()} {block['where'].strip()} order by {block['order_by'].strip()}"
    listed = []
    for row in await database.fetch(sql.replace("${domain_uuid}", str(domain))):
        value, label = block["select_value"]["dialplan"], block["select_label"]
        for key in block["field"]:
            value, label = value.replace(f"${{{key}}}", row[key] or ""), label.replace(f"${{{key}}}", row[key] or "")
        for placeholder in ("${domain_name}", "${context}"):
            value, label = value.replace(placeholder, name), label.replace(placeholder, name)
        listed.append((value, label.strip()))
    return listed


@pytest.mark.parametrize("version", ["5.4", "5.5"])
async def test_a_secretary_number_is_listed_once_by_fusionpbx_or_by_the_app(version: str) -> None:
    """Without the app, FusionPBX's own Dialplan group lists the number; once the app is installed, its "AI
    Secretary" group does and FusionPBX's no longer: never both."""
    block = _app_block()
    assert (block["name"], block["label"]) == ("ai_secretary", "ai_secretary")  # ai_secretary_destinations
    config = APP_CONFIG.read_text()
    assert config.count('"ai_secretary_destinations"') == 1
    assert "title-ai_secretary" in (APP_CONFIG.parent / "app_languages.php").read_text()  # the group's title
    name, url = await databases.create_database(version)
    database = Database(url)
    try:
        installer = DialplanInstaller(database)
        alone = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001"))
        assert not alone.by_app and await _picker(database, version, ACME) == [("5000", alone.label)]
        assert await _app_picker(database, block, ACME, "acme.example.com") == []
        # the app installed: `upgrade.php --defaults` wrote its default settings
        await database.execute(
            """INSERT INTO v_default_settings (default_setting_uuid, default_setting_category,
                   default_setting_subcategory, default_setting_name, default_setting_value, default_setting_enabled)
               VALUES ($1, 'ai_secretary', 'service_url', 'text', 'http://127.0.0.1:8087', 'true')""",
            uuid4(),
        )
        moved = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "realtime", "1001"))
        added = await installer.install(DialplanRequest(ACME, "acme.example.com", "5001", "turn", "1001"))
        assert (
            moved.by_app
            and moved.destination
            and moved.label == "5000 AI secretary (realtime mode), installed by voiceai"
        )
        assert await _picker(database, version, ACME) == []
        assert await _app_picker(database, block, ACME, "acme.example.com") == [
            ("transfer:5000 XML acme.example.com", moved.label),
            ("transfer:5001 XML acme.example.com", added.label),
        ]
        assert await _app_picker(database, block, GLOBEX, "globex.example.com") == []
        # a row flagged before the app came stays in FusionPBX's group only
        await database.execute("UPDATE v_dialplans SET dialplan_destination = 'true' WHERE dialplan_number = '5001'")
        assert [n for n, _ in await _picker(database, version, ACME)] == ["5001"]
        assert [v for v, _ in await _app_picker(database, block, ACME, "acme.example.com")] == [
            "transfer:5000 XML acme.example.com"
        ]
    finally:
        await database.close()
        await databases.drop_database(name)


async def test_a_fusionpbx_without_the_destination_column_still_gets_the_row() -> None:
    """FusionPBX 4.4 and older have no v_dialplans.dialplan_destination."""
    name, url = await databases.create_database("5.4")
    database = Database(url)
    try:
        await database.execute("ALTER TABLE v_dialplans DROP COLUMN dialplan_destination")
        installer = DialplanInstaller(database)
        installed = await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001"))
        assert installed.created and not installed.destination
        assert not (await installer.install(DialplanRequest(ACME, "acme.example.com", "5000", "turn", "1001"))).created
        number = await database.fetchval("SELECT dialplan_number FROM v_dialplans WHERE app_uuid = $1", APP_UUID)
        assert number == "5000"
    finally:
        await database.close()
        await databases.drop_database(name)


def _voiceai(url: str, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"DATABASE_URL": url, "VOICEAI_LOG_FORMAT": "console"} | env_vars
    return subprocess.run(
        [sys.executable, "-m", "voiceai", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_creates_keys_and_installs_the_dialplan(writable_fusionpbx_url: str, tmp_path: Path) -> None:
    url = writable_fusionpbx_url
    created = _voiceai(url, "apikey", "create", "--domain", "acme.example.com", "--description", "ops")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    database = Database(url)
    try:
        principal = await ApiKeyStore(database).authenticate(key)
        assert principal is not None and principal.domain_uuid == ACME and not principal.is_superadmin
        listed = _voiceai(url, "apikey", "list", "--domain", "acme.example.com")
        assert key not in listed.stdout and key[:10] in listed.stdout
        assert _voiceai(url, "apikey", "revoke", key[:10]).returncode == 0
        assert await ApiKeyStore(database).authenticate(key) is None
        assert _voiceai(url, "apikey", "create").returncode == 2
        unknown = _voiceai(url, "apikey", "create", "--domain", "nowhere.example")
        assert unknown.returncode == 1 and "unknown domain" in unknown.stderr

        installed = _voiceai(
            url,
            "dialplan",
            "install",
            "--domain",
            "acme.example.com",
            "--extension",
            "5000",
            "--mode",
            "turn",
            "--ivr-url",
            "http://10.0.0.5:8086",
            VOICEAI_FUSIONPBX__CACHE_DIR=str(tmp_path / "not-a-fusionpbx-host"),
        )
        assert installed.returncode == 0, installed.stderr
        assert "installed" in installed.stdout and "memcache delete dialplan:acme.example.com" in installed.stdout
        assert "is not on this machine" in installed.stdout  # what to run, since it could not flush
        xml = await database.fetchval("SELECT dialplan_xml FROM v_dialplans WHERE app_uuid = $1", APP_UUID)
        assert "voiceai_url=http://10.0.0.5:8086" in xml and "voiceai_fallback=1001" in xml
        assert (
            "updated"
            in _voiceai(url, "dialplan", "install", "--domain", "acme.example.com", "--extension", "5000").stdout
        )
        clash = _voiceai(url, "dialplan", "install", "--domain", "acme.example.com", "--extension", "1002")
        assert clash.returncode == 0 and "extension 1002 also answers 1002" in clash.stderr
        (tmp_path / "dialplan.acme.example.com").write_text("<stale/>")
        removed = _voiceai(
            url,
            *("dialplan", "uninstall", "--domain", "acme.example.com", "--extension", "5000"),
            VOICEAI_FUSIONPBX__CACHE_DIR=str(tmp_path),
        )
        assert removed.returncode == 0 and "removed" in removed.stdout
        assert f"deleted {tmp_path}/dialplan.acme.example.com" in removed.stdout
        bad = _voiceai(url, "dialplan", "install", "--domain", "acme.example.com", "--extension", "50;00")
        assert bad.returncode == 1 and "extension" in bad.stderr
        assert isinstance(
            UUID(
                str(
                    await database.fetchval(
                        "SELECT dialplan_uuid FROM v_dialplans WHERE dialplan_number = '1002' AND app_uuid = $1",
                        APP_UUID,
                    )
                )
            ),
            UUID,
        )
    finally:
        await database.close()


async def test_cli_writes_the_domains_own_bridge_token_and_says_how_a_did_reaches_it(
    writable_fusionpbx_url: str,
) -> None:
    url = writable_fusionpbx_url
    secret = "an-operator-secret-of-at-least-32-chars"
    install = ("dialplan", "install", "--domain", "acme.example.com", "--extension", "5001", "--mode", "realtime")
    done = _voiceai(url, *install, VOICEAI_BRIDGE__TOKEN_SECRET=secret, VOICEAI_BRIDGE__AUTH_TOKEN="shared-token")
    assert done.returncode == 0, done.stderr
    assert "Dialplan > Destinations" in done.stdout and "voiceai_secretary AI secretary (realtime mode)" in done.stdout
    database = Database(url)
    try:
        xml = await database.fetchval(
            "SELECT dialplan_xml FROM v_dialplans WHERE app_uuid = $1 AND dialplan_number = '5001'", APP_UUID
        )
        assert derive_domain_token(secret, ACME) in xml
        assert secret not in xml and "shared-token" not in xml
        shared = _voiceai(url, *install, VOICEAI_BRIDGE__AUTH_TOKEN="shared-token")
        assert shared.returncode == 0 and "every domain" in shared.stderr  # the admin is told what that exposes
        turn = _voiceai(url, *install[:-1], "turn", VOICEAI_BRIDGE__TOKEN_SECRET=secret)
        assert turn.returncode == 0
        xml = await database.fetchval(
            "SELECT dialplan_xml FROM v_dialplans WHERE app_uuid = $1 AND dialplan_number = '5001'", APP_UUID
        )
        assert "Bearer" not in xml  # turn mode never carries a bridge token
        removed = _voiceai(url, "dialplan", "uninstall", "--domain", "acme.example.com", "--extension", "5001")
        assert removed.returncode == 0
    finally:
        await database.close()
