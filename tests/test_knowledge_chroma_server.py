"""The knowledge base against a real Chroma server (`HttpClient`), and what happens when that server is down:
uploads are kept as "failed" and re-indexed later, calls go on without knowledge, nothing is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest

from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.errors import DependencyUnavailable
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.conftest import acme_config
from tests.support import databases
from tests.support.chroma_server import ChromaServer

ACME = UUID(databases.ACME)
DOCUMENTS = Path(__file__).parent / "data" / "knowledge"


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def runtime(
    chroma: ChromaServer, make_settings: Callable[..., Settings], models: LocalModels
) -> AsyncIterator[Runtime]:
    rt = Runtime.create(make_settings(knowledge={"chroma_url": chroma.url, "search_timeout_s": 5}), models=models)
    yield rt
    await rt.close()


async def test_round_trip_through_a_chroma_server(runtime: Runtime, chroma: ChromaServer) -> None:
    info = await runtime.knowledge.add_document(
        ACME, "acme-customer-guide.md", (DOCUMENTS / "acme-customer-guide.md").read_bytes()
    )
    assert info.status == "indexed"
    assert (await runtime.health())["chromadb"] == "ok"
    hits = await runtime.knowledge.search(str(ACME), "Do you deliver to Mexico?")
    assert hits[0].source == "acme-customer-guide.md: Shipping"
    assert hits[0].answer == "We ship to the United States, Canada and Mexico."
    assert not (runtime.settings.data_dir / "chroma").exists()  # nothing embedded when a server is set
    assert await runtime.knowledge.delete_document(ACME, info.document_uuid)
    assert not await runtime.knowledge.has_documents(str(ACME))


async def test_an_outage_loses_nothing(runtime: Runtime, chroma: ChromaServer) -> None:
    kb = runtime.knowledge
    safety = await kb.add_document(ACME, "acme-safety.txt", (DOCUMENTS / "acme-safety.txt").read_bytes())
    conversation = Conversation(acme_config(), FrontDesk(), knowledge=kb)
    reply = await conversation.respond("How long does the fuel canister last?")
    assert "twelve minutes" in reply.text

    chroma.stop()
    assert (await runtime.health())["chromadb"] == "down"
    guide = await kb.add_document(ACME, "acme-customer-guide.md", (DOCUMENTS / "acme-customer-guide.md").read_bytes())
    assert guide.status == "failed" and guide.chunk_count == 0
    assert guide.error is not None and "chromadb is unavailable" in guide.error
    listed = {d.filename: d.status for d in await kb.list_documents(ACME)}
    assert listed == {"acme-safety.txt": "indexed", "acme-customer-guide.md": "failed"}
    with pytest.raises(DependencyUnavailable):
        await kb.search(str(ACME), "Do you ship to Canada?")
    with pytest.raises(DependencyUnavailable):
        await kb.reindex(ACME, guide.document_uuid)
    with pytest.raises(DependencyUnavailable):  # nothing is deleted while the index can't be cleaned
        await kb.delete_document(ACME, safety.document_uuid)
    assert await kb.get_document(ACME, safety.document_uuid) is not None

    # A call during the outage still gets an answer: the turn goes on without knowledge.
    reply = await conversation.respond("How long does the fuel canister last?")
    assert reply.brain == "front_desk" and reply.text and "twelve" not in reply.text

    chroma.start()
    assert await kb.reindex(ACME, guide.document_uuid) == 6
    restored = await kb.get_document(ACME, guide.document_uuid)
    assert restored is not None and (restored.status, restored.error) == ("indexed", None)
    assert restored.chunk_count == 6
    hits = await kb.search(str(ACME), "Do you ship to Canada?")
    assert hits[0].answer == "We ship to the United States, Canada and Mexico."
    reply = await conversation.respond("How long does the fuel canister last?")
    assert "twelve minutes" in reply.text
