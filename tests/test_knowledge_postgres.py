"""Document metadata in the FusionPBX PostgreSQL, on both schemas (5.4 `text` flags, 5.5 `boolean`): the
0002 migration, domain-scoped statements, cascade with the domain, and a domain with no secretary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from secretary.db.database import Database
from secretary.db.migrations import available_migrations, current_version, migrate
from secretary.errors import DomainDisabled, NoSecretary
from secretary.knowledge.documents import DocumentInfo
from secretary.knowledge.pg_documents import PostgresDocumentStore
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support import databases

ACME, GLOBEX, INITECH = UUID(databases.ACME), UUID(databases.GLOBEX), UUID(databases.INITECH)
DOCUMENTS = Path(__file__).parent / "data" / "knowledge"


@pytest.fixture
async def database(fusionpbx_url: str) -> AsyncIterator[Database]:
    db = Database(fusionpbx_url)
    yield db
    await db.execute("DELETE FROM v_ai_knowledge_documents WHERE domain_uuid = ANY($1::uuid[])", [ACME, GLOBEX])
    await db.close()


@pytest.fixture
async def pg_runtime(
    fusionpbx_url: str, database: Database, make_settings: Callable[..., Settings], models: LocalModels
) -> AsyncIterator[Runtime]:
    rt = Runtime.create(make_settings(database_url=fusionpbx_url), models=models)
    yield rt
    await rt.close()


def _info(domain: UUID, name: str = "notes.txt") -> DocumentInfo:
    return DocumentInfo(
        document_uuid=uuid4(),
        domain_uuid=domain,
        filename=name,
        content_type="text/plain",
        size_bytes=12,
        chunk_count=0,
        status="indexing",
        created_at=datetime.now(UTC),
    )


async def test_the_knowledge_migration_is_applied_once(database: Database) -> None:
    assert await current_version(database) == available_migrations()[-1].version >= 2
    assert await migrate(database) == []  # a second run changes nothing
    row = await database.fetchrow("SELECT to_regclass('v_ai_knowledge_documents') IS NOT NULL AS present")
    assert row is not None and row["present"]


async def test_every_statement_is_scoped_to_its_domain(database: Database) -> None:
    store = PostgresDocumentStore(database)
    info = _info(ACME)
    await store.insert(info, "Anvils cost 120 dollars.", "0" * 64)
    await store.set_status(ACME, info.document_uuid, "indexed", 1, None)
    indexed = info.model_copy(update={"status": "indexed", "chunk_count": 1})
    got = await store.get(ACME, info.document_uuid)
    assert got is not None and got.model_dump(exclude={"created_at"}) == indexed.model_dump(exclude={"created_at"})
    assert await store.text(ACME, info.document_uuid) == "Anvils cost 120 dollars."
    assert await store.page(ACME, 0, 10) == [got]
    assert await store.find_by_filename(ACME, "notes.txt") == [got]
    assert await store.all_uuids(ACME) == [info.document_uuid]

    # Globex names acme's document: nothing is found, changed or deleted.
    assert await store.get(GLOBEX, info.document_uuid) is None
    assert await store.text(GLOBEX, info.document_uuid) is None
    assert await store.page(GLOBEX, 0, 10) == []
    assert await store.find_by_filename(GLOBEX, "notes.txt") == []
    await store.set_status(GLOBEX, info.document_uuid, "failed", 0, "hijacked")
    assert not await store.delete(GLOBEX, info.document_uuid)
    assert await store.get(ACME, info.document_uuid) == got

    assert await store.delete(ACME, info.document_uuid)
    assert await store.get(ACME, info.document_uuid) is None


async def test_documents_go_with_their_domain(database: Database) -> None:
    domain = uuid4()
    await database.execute(
        "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled) VALUES ($1, $2, true)",
        domain,
        f"{domain.hex[:8]}.example.com",
    )
    store = PostgresDocumentStore(database)
    info = _info(domain)
    await store.insert(info, "text", "0" * 64)
    await database.execute("DELETE FROM v_domains WHERE domain_uuid = $1", domain)
    assert await store.get(domain, info.document_uuid) is None


async def test_an_unknown_domain_cannot_hold_documents(database: Database) -> None:
    import asyncpg

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await PostgresDocumentStore(database).insert(_info(uuid4()), "text", "0" * 64)


async def test_knowledge_base_on_postgres(pg_runtime: Runtime) -> None:
    kb = pg_runtime.knowledge
    info = await kb.add_document(ACME, "acme-safety.txt", (DOCUMENTS / "acme-safety.txt").read_bytes())
    assert info.status == "indexed" and info.chunk_count == 1
    assert [d.document_uuid for d in await kb.list_documents(ACME)] == [info.document_uuid]
    assert await kb.get_document(GLOBEX, info.document_uuid) is None
    assert not await kb.delete_document(GLOBEX, info.document_uuid)
    assert await kb.reindex(ACME, info.document_uuid) == 1
    hits = await kb.search(str(ACME), "How long does a fuel canister last?")
    assert hits[0].answer == "The fuel canister lasts about twelve minutes at full thrust."
    assert await kb.search(str(GLOBEX), "How long does a fuel canister last?") == []
    assert await kb.delete_document(ACME, info.document_uuid)
    assert await kb.list_documents(ACME) == []


async def test_a_domain_without_a_secretary_gets_no_documents(pg_runtime: Runtime, database: Database) -> None:
    domain = uuid4()
    await database.execute(
        "INSERT INTO v_domains (domain_uuid, domain_name, domain_enabled) VALUES ($1, $2, true)",
        domain,
        f"{domain.hex[:8]}.example.com",
    )
    try:
        with pytest.raises(NoSecretary):
            await pg_runtime.knowledge.add_document(domain, "notes.txt", b"Facts about nothing.")
        row = await database.fetchrow(
            "SELECT count(*) AS n FROM v_ai_knowledge_documents WHERE domain_uuid = $1", domain
        )
        assert row is not None and row["n"] == 0
    finally:
        await database.execute("DELETE FROM v_domains WHERE domain_uuid = $1", domain)


async def test_a_disabled_domain_gets_no_documents(pg_runtime: Runtime) -> None:
    with pytest.raises(DomainDisabled):
        await pg_runtime.knowledge.add_document(INITECH, "notes.txt", b"Facts.")


async def test_a_disabled_secretary_may_be_prepared(pg_runtime: Runtime, database: Database) -> None:
    await database.execute("UPDATE v_ai_secretaries SET secretary_enabled = false WHERE domain_uuid = $1", GLOBEX)
    try:
        info = await pg_runtime.knowledge.add_document(GLOBEX, "notes.txt", b"Globex opens a new lagoon in May.")
        assert info.status == "indexed"
    finally:
        await database.execute("UPDATE v_ai_secretaries SET secretary_enabled = true WHERE domain_uuid = $1", GLOBEX)
