"""The knowledge base end to end on its embedded defaults: file document store + embedded ChromaDB, the real
MiniLM embedder. Upload, list, search, replace, delete, re-index; and the bad documents."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from secretary.errors import BadInput, NotFound, UnknownDomain
from secretary.knowledge.chroma_index import collection_name
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.support import databases
from tests.support.pdf import build_pdf

ACME = UUID(databases.ACME)
DOCUMENTS = Path(__file__).parent / "data" / "knowledge"


@pytest.fixture
async def runtime(make_settings: Callable[..., Settings], models: LocalModels) -> AsyncIterator[Runtime]:
    rt = Runtime.create(make_settings(), models=models)
    yield rt
    await rt.close()


async def add(rt: Runtime, name: str, domain: UUID = ACME) -> Any:
    return await rt.knowledge.add_document(domain, name, (DOCUMENTS / name).read_bytes())


async def test_a_document_is_indexed_listed_and_found_with_its_source(runtime: Runtime) -> None:
    ticks: list[tuple[int, int]] = []
    info = await runtime.knowledge.add_document(
        ACME,
        "acme-customer-guide.md",
        (DOCUMENTS / "acme-customer-guide.md").read_bytes(),
        on_progress=lambda done, total: ticks.append((done, total)),
    )
    assert (info.status, info.error, info.content_type, info.filename) == (
        "indexed",
        None,
        "text/markdown",
        "acme-customer-guide.md",
    )
    assert info.chunk_count == 6 and info.size_bytes == len((DOCUMENTS / "acme-customer-guide.md").read_bytes())
    assert ticks[-1] == (6, 6)
    assert await runtime.knowledge.list_documents(ACME) == [info]
    assert await runtime.knowledge.get_document(ACME, info.document_uuid) == info
    assert await runtime.knowledge.has_documents(str(ACME))

    hits = await runtime.knowledge.search(str(ACME), "Is there a warranty on the wheels of rocket skates?")
    assert hits[0].source == "acme-customer-guide.md: Warranty"
    assert "wheels are wear parts" in hits[0].text
    assert (
        hits[0].answer
        == "Rocket skates have a two-year warranty on the motor; the wheels are wear parts and are not covered."
    )
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].score > 0.6 > hits[-1].score


async def test_a_domain_without_documents_has_no_knowledge(runtime: Runtime) -> None:
    assert not await runtime.knowledge.has_documents(str(ACME))
    assert await runtime.knowledge.search(str(ACME), "anything at all") == []
    assert await runtime.knowledge.list_documents(ACME) == []


async def test_uploading_the_same_file_name_replaces_the_old_document(runtime: Runtime) -> None:
    old = await runtime.knowledge.add_document(ACME, "prices.txt", b"Anvils cost 120 dollars.")
    new = await runtime.knowledge.add_document(ACME, "prices.txt", b"Anvils now cost 150 dollars.")
    assert [d.document_uuid for d in await runtime.knowledge.list_documents(ACME)] == [new.document_uuid]
    assert await runtime.knowledge.get_document(ACME, old.document_uuid) is None
    hits = await runtime.knowledge.search(str(ACME), "How much is an anvil?")
    assert [h.text for h in hits] == ["Anvils now cost 150 dollars."]


async def test_delete_removes_the_passages_and_the_metadata(runtime: Runtime) -> None:
    guide = await add(runtime, "acme-customer-guide.md")
    safety = await add(runtime, "acme-safety.txt")
    assert await runtime.knowledge.delete_document(ACME, guide.document_uuid)
    assert not await runtime.knowledge.delete_document(ACME, guide.document_uuid)
    assert [d.document_uuid for d in await runtime.knowledge.list_documents(ACME)] == [safety.document_uuid]
    hits = await runtime.knowledge.search(str(ACME), "What is the warranty on an anvil?", limit=10)
    assert {h.source for h in hits} == {"acme-safety.txt"}
    assert await runtime.knowledge.index.count(ACME) == 1


async def test_reindex_one_document_and_the_whole_domain(runtime: Runtime) -> None:
    guide = await add(runtime, "acme-customer-guide.md")
    await add(runtime, "acme-safety.txt")
    assert await runtime.knowledge.reindex(ACME, guide.document_uuid) == 6
    assert await runtime.knowledge.index.count(ACME) == 7
    assert await runtime.knowledge.reindex(ACME) == 7
    assert await runtime.knowledge.index.count(ACME) == 7
    with pytest.raises(NotFound):
        await runtime.knowledge.reindex(ACME, uuid4())


async def test_a_pdf_is_searchable_and_names_its_page(runtime: Runtime) -> None:
    pdf = build_pdf([["Price list"], ["Portable holes cost 99 dollars each, delivery included."]])
    info = await runtime.knowledge.add_document(ACME, "price list.pdf", pdf, "application/pdf")
    assert info.status == "indexed"
    hits = await runtime.knowledge.search(str(ACME), "How much does a portable hole cost?")
    assert hits[0].source == "price list.pdf, page 2"
    assert (await runtime.knowledge.reindex(ACME, info.document_uuid)) == info.chunk_count
    assert (await runtime.knowledge.search(str(ACME), "portable hole price"))[0].source == "price list.pdf, page 2"


async def test_html_scripts_never_reach_the_index(runtime: Runtime) -> None:
    await runtime.knowledge.add_document(
        ACME, "globex-handbook.html", (DOCUMENTS / "globex-handbook.html").read_bytes()
    )
    collection = runtime.knowledge.index._connect().get_collection(collection_name(ACME))  # what Chroma stores
    stored = collection.get(include=["documents", "metadatas"])
    assert stored["documents"] and len(stored["documents"]) == 4
    everything = json.dumps(stored["documents"]) + json.dumps(stored["metadatas"])
    assert "tracking-code" not in everything and "script text" not in everything and "font-family" not in everything


@pytest.mark.parametrize(
    ("filename", "content", "content_type", "code"),
    [
        ("brochure.pdf", b"This is plain text pretending to be a PDF.", "application/pdf", "bad_document"),
        ("brochure.pdf", b"%PDF-1.4\n" + b"\x00garbage" * 100, None, "bad_document"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "image/png", "unsupported_document"),
        ("empty.txt", b"", None, "bad_document"),
        ("scripts.html", b"<script>only()</script>", None, "bad_document"),
    ],
)
async def test_bad_documents_are_refused_and_nothing_is_kept(
    runtime: Runtime, filename: str, content: bytes, content_type: str | None, code: str
) -> None:
    with pytest.raises(BadInput) as caught:
        await runtime.knowledge.add_document(ACME, filename, content, content_type)
    assert caught.value.code == code
    assert await runtime.knowledge.list_documents(ACME) == []
    assert not await runtime.knowledge.has_documents(str(ACME))


async def test_an_oversized_document_is_refused_before_anything_else(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    rt = Runtime.create(make_settings(knowledge={"max_document_bytes": 1000}), models=models)
    try:
        with pytest.raises(BadInput) as caught:
            await rt.knowledge.add_document(ACME, "big.txt", b"word " * 201)
        assert (caught.value.code, caught.value.field) == ("too_large", "content")
        assert "1000 bytes" in caught.value.message
        assert await rt.knowledge.list_documents(ACME) == []
    finally:
        await rt.close()


async def test_a_domain_without_a_secretary_gets_no_documents(runtime: Runtime) -> None:
    with pytest.raises(UnknownDomain):  # the YAML store knows only acme
        await runtime.knowledge.add_document(UUID(databases.GLOBEX), "notes.txt", b"Some facts.")
    assert await runtime.knowledge.list_documents(UUID(databases.GLOBEX)) == []


async def test_bad_arguments_name_their_field(runtime: Runtime) -> None:
    with pytest.raises(BadInput) as caught:
        await runtime.knowledge.search("not-a-uuid", "question")
    assert caught.value.field == "domain_uuid"
    with pytest.raises(BadInput) as caught:
        await runtime.knowledge.list_documents(ACME, limit=0)
    assert caught.value.field == "limit"
    with pytest.raises(BadInput) as caught:
        await runtime.knowledge.list_documents(ACME, offset=-1)
    assert caught.value.field == "offset"


async def test_list_pages_newest_first(runtime: Runtime) -> None:
    names = [f"note-{i}.txt" for i in range(5)]
    for name in names:
        await runtime.knowledge.add_document(ACME, name, f"Fact number {name}.".encode())
    first = await runtime.knowledge.list_documents(ACME, offset=0, limit=2)
    rest = await runtime.knowledge.list_documents(ACME, offset=2, limit=50)
    assert [d.filename for d in first + rest] == names[::-1]


async def test_documents_and_index_survive_a_restart(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    settings = make_settings()
    first = Runtime.create(settings, models=models)
    try:
        info = await add(first, "acme-safety.txt")
    finally:
        await first.close()
    second = Runtime.create(settings, models=models)
    try:
        assert await second.knowledge.list_documents(ACME) == [info]
        hits = await second.knowledge.search(str(ACME), "Do I need a helmet?")
        assert hits[0].answer == "Always wear a helmet and elbow pads when using rocket skates."
        stored = settings.data_dir / "knowledge" / str(ACME)
        assert sorted(p.name for p in stored.iterdir()) == sorted(["documents.json", f"{info.document_uuid}.txt"])
    finally:
        await second.close()


def test_knowledge_settings_are_checked() -> None:
    from pydantic import ValidationError

    from secretary.settings import KnowledgeSettings

    with pytest.raises(ValidationError, match="chunk_overlap_chars must be smaller"):
        KnowledgeSettings(chunk_chars=200, chunk_overlap_chars=200)
    assert Settings(knowledge={"chroma_url": "http://chroma:8000"}).knowledge.chroma_url == "http://chroma:8000"
