"""Cloud embedders for the knowledge base, chosen per domain (`providers.embeddings`): OpenAI `/v1/embeddings`
through the official SDK and Ollama's `/api/embed`, against local servers that answer with real sentence
vectors (MiniLM). A domain indexes and searches with its own embedder; switching embedders means re-indexing;
a cloud embedder failing during a call (every fault) leaves the turn without knowledge at once — the front
desk still answers — and is benched, so the next question does not wait on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml

from secretary.conversation.conversation import Conversation
from secretary.conversation.front_desk import FrontDesk
from secretary.errors import DependencyUnavailable
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support import databases
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_openai import FakeOpenAi
from tests.support.fake_servers import FAULTS, FakeServer, Fault
from tests.support.speech import Speech

ACME = UUID(databases.ACME)
GUIDE = Path(__file__).parent.parent / "data" / "knowledge" / "acme-customer-guide.md"
QUESTION = "Is there a warranty on the wheels of rocket skates?"
MODELS = {"openai": "text-embedding-3-small", "ollama": "nomic-embed-text"}


def secretaries(tmp_path: Path, embeddings: list[Any]) -> Path:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    acme = document["secretaries"][0]
    acme["providers"] = {"embeddings": embeddings}
    document["secretaries"] = [acme]
    path = tmp_path / "secretaries.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def entry(provider: str, url: str) -> dict[str, Any]:
    values: dict[str, Any] = {"name": provider, "model": MODELS[provider]}
    if provider == "openai":
        values |= {"base_url": url + "/v1", "api_key_env": "TEST_OPENAI_KEY"}
    else:
        values["base_url"] = url
    return values


@pytest.fixture
async def servers(models: LocalModels, speech: Speech) -> AsyncIterator[dict[str, FakeServer]]:
    def embed(texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = models.minilm().encode(texts).tolist()
        return rows

    embed(["warm up"])  # the model loads on first use: not inside the embedding deadline the test sets
    started: dict[str, FakeServer] = {
        "openai": await FakeOpenAi(speech.say, speech.transcribe, embed).start(),
        "ollama": await FakeOllama(embed).start(),
    }
    yield started
    for server in started.values():
        await server.stop()


@pytest.fixture
def runtime_for(
    make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path, provider_keys: dict[str, str]
) -> Callable[[Path], Runtime]:
    def build(secretaries_file: Path) -> Runtime:
        # The embedder's deadlines follow: 3 s for a question, 30 s for a document's passages (MiniLM in the
        # fake server on a loaded machine), yet a hung embedder is still benched within seconds.
        settings = make_settings(secretaries_file=secretaries_file, knowledge={"search_timeout_s": 4.0})
        return Runtime.create(settings, models=models)

    return build


@pytest.mark.parametrize("provider", ["openai", "ollama"])
async def test_a_domain_indexes_and_searches_with_its_own_embedder(
    provider: str, servers: dict[str, FakeServer], runtime_for: Callable[[Path], Runtime], tmp_path: Path
) -> None:
    server = servers[provider]
    path = secretaries(tmp_path, [entry(provider, server.url)])
    rt = runtime_for(path)
    try:
        info = await rt.knowledge.add_document(ACME, GUIDE.name, GUIDE.read_bytes())
        assert info.status == "indexed" and info.chunk_count == 6
        assert await rt.knowledge.index.embedder_of(ACME) == f"{provider}:{MODELS[provider]}"
        hits = await rt.knowledge.search(str(ACME), QUESTION)
        assert "wheels are wear parts" in hits[0].text and hits[0].score > 0.6
        asked = [r for r in server.requests if r.get("model")]
        assert {r["model"] for r in asked} == {MODELS[provider]} and any(QUESTION in r["input"] for r in asked)
        config = await rt.secretaries.by_uuid(ACME)
        reply = await Conversation(config, FrontDesk(), knowledge=rt.knowledge).respond(QUESTION)
        assert "wear parts" in reply.text  # the front desk read the passage the cloud vectors found

        # The domain goes back to MiniLM: its collection was built by another embedder, so it needs a re-index.
        secretaries(tmp_path, ["minilm"])
        assert await rt.knowledge.search(str(ACME), QUESTION) == []
        assert await rt.knowledge.reindex(ACME) == 6
        assert await rt.knowledge.index.embedder_of(ACME) == "all-MiniLM-L6-v2"
        assert "wheels are wear parts" in (await rt.knowledge.search(str(ACME), QUESTION))[0].text
    finally:
        await rt.close()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", ["openai", "ollama"])
async def test_a_failing_cloud_embedder_leaves_the_turn_without_knowledge(
    provider: str,
    fault: Fault,
    servers: dict[str, FakeServer],
    runtime_for: Callable[[Path], Runtime],
    tmp_path: Path,
) -> None:
    server = servers[provider]
    rt = runtime_for(secretaries(tmp_path, [entry(provider, server.url)]))
    try:
        assert (await rt.knowledge.add_document(ACME, GUIDE.name, GUIDE.read_bytes())).status == "indexed"
        if fault is Fault.REFUSED:
            await server.stop()  # nothing listens there any more
        server.fault = fault
        config = await rt.secretaries.by_uuid(ACME)
        conversation = Conversation(config, FrontDesk(), knowledge=rt.knowledge)

        reply = await conversation.respond(QUESTION)

        assert reply.text and "wear parts" not in reply.text  # answered, without the document
        benched = rt.providers.health.unhealthy()
        assert any(key.startswith(f"embeddings:{provider}:") for key in benched), benched
        asked = len(server.requests)
        with pytest.raises(DependencyUnavailable, match="benched"):
            await rt.knowledge.search(str(ACME), "When are you open?")
        assert len(server.requests) == asked  # benched: not asked again
        # An upload while the embedder is out is kept, marked failed, for a re-index later.
        kept = await rt.knowledge.add_document(ACME, "prices.txt", b"Anvils cost 120 dollars.")
        assert kept.status == "failed" and "benched" in (kept.error or "")
    finally:
        server.fault = Fault.NONE
        await rt.close()
