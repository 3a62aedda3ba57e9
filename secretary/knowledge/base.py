"""`KnowledgeBase`: a domain's documents, from upload to the passages a brain is given during a call.

Upload: check (size, type, the domain has a secretary) → wait the domain's turn → extract text and cut it
into passages (in an ingest process) → embed (on the ingest thread) → store in the domain's Chroma collection;
never in the `CpuPool` that calls use (see `ingest.py`). A document that takes more than an ingest job may
(CPU time, memory, time) is listed as "failed" with the reason, and the upload is refused with it.
The document's metadata and text are saved before indexing, so an index that is down loses nothing: the
document is listed as "failed" with the reason, and `reindex` finishes the job later. A new upload with the
same file name replaces the old document once the new one is indexed (an updated price list must not answer
next to the old one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import numpy as np
import structlog

from secretary.conversation.brain import KnowledgeChunk
from secretary.errors import BadInput, DependencyUnavailable, NotFound, SecretaryDisabled
from secretary.knowledge.chroma_index import ChromaIndex, Hit, Metadata
from secretary.knowledge.chunking import TextChunk, reading_sentences
from secretary.knowledge.documents import DocumentInfo, DocumentStore
from secretary.knowledge.embedders import Embedder, MiniLmEmbedder
from secretary.knowledge.extraction import clean_filename, resolve_content_type
from secretary.knowledge.grounding import PROBES, floor_from
from secretary.knowledge.ingest import Ingest
from secretary.knowledge.ingest_worker import ExtractionLimit
from secretary.settings import KnowledgeSettings
from secretary.tenants.store import SecretaryStore

log = structlog.get_logger(__name__)

INDEX_BATCH = 64  # passages embedded and stored per step (one progress tick)
MAX_QUERY_CHARS = 1000
ANSWER_MIN_WORDS = 5  # a shorter best sentence is read with the one after it
ANSWER_RUNNER_UP_MARGIN = 0.15  # the second-nearest sentence is read too when it is this close to the best
RESCORED_HITS = 1  # passages whose sentences are embedded and compared with the question (~0.6 ms a token)

Progress = Callable[[int, int], None]  # (passages indexed so far, passages in the document)


def _domain(value: UUID | str, field: str = "domain_uuid") -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError:
        raise BadInput(f"{field} is not a UUID", field=field) from None


def _source(hit: Hit) -> str:
    """The document and where in it: `prices.pdf, page 3` or `guide.md: Shipping`."""
    source = str(hit.metadata.get("source", "document"))
    if hit.metadata.get("page"):
        source += f", page {hit.metadata['page']}"
    if hit.metadata.get("heading"):
        source += f": {hit.metadata['heading']}"
    return source


def _answer(sentences: list[str], closeness: list[float]) -> str:
    """The sentence nearest the question; with it the runner-up when that is nearly as near (a "when"
    question is close to every sentence naming the thing, not only to the one with the time), and the next
    sentence when the nearest is too short to stand alone (a title line). Read in the document's order."""
    ranked = sorted(range(len(sentences)), key=lambda i: closeness[i], reverse=True)
    best = ranked[0]
    picked = {best}
    if len(ranked) > 1 and closeness[ranked[1]] >= closeness[best] - ANSWER_RUNNER_UP_MARGIN:
        picked.add(ranked[1])
    if len(sentences[best].split()) < ANSWER_MIN_WORDS and best + 1 < len(sentences):
        picked.add(best + 1)
    return " ".join(sentences[i] for i in sorted(picked))


class KnowledgeBase:
    def __init__(
        self,
        *,
        documents: DocumentStore,
        index: ChromaIndex,
        embedder: Embedder,
        secretaries: SecretaryStore,
        settings: KnowledgeSettings,
        embedder_for: Callable[[UUID], Awaitable[Embedder]] | None = None,
    ) -> None:
        """`embedder` is the default (MiniLM); `embedder_for` picks a domain's own (its `providers.embeddings`)."""
        self.documents = documents
        self.index = index
        self.embedder = embedder
        self._embedder_for = embedder_for
        self._secretaries = secretaries
        self._settings = settings
        self.ingest = Ingest(settings)
        self._floors: dict[UUID, tuple[int, float]] = {}  # domain → (passages then, floor)
        self._probes: dict[str, list[list[float]]] = {}  # embedder name → the probes' vectors

    # -- documents -----------------------------------------------------------------------------------------

    async def add_document(
        self,
        domain_uuid: UUID,
        filename: str,
        content: bytes,
        content_type: str | None = None,
        *,
        on_progress: Progress | None = None,
    ) -> DocumentInfo:
        """Raises `BadInput` (codes `too_large`, `unsupported_document`, `bad_document`), `NoSecretary` /
        `UnknownDomain` for a domain without a secretary, `TooManyDocuments` when the domain has as many
        being added as it may, and `ExtractionLimit` for a document that took more than a job may (it is then
        listed as "failed" with the reason). An index failure does not raise: the document is kept and
        returned with status "failed"."""
        domain_uuid = _domain(domain_uuid)
        name = clean_filename(filename)
        limit = self._settings.max_document_bytes
        if len(content) > limit:
            raise BadInput(
                f"{name} is {len(content)} bytes; the largest document accepted is {limit} bytes",
                field="content",
                code="too_large",
            )
        await self._require_secretary(domain_uuid)
        kind = resolve_content_type(name, content_type)
        async with self.ingest.queue.admitted(domain_uuid):
            info = DocumentInfo(
                document_uuid=uuid4(),
                domain_uuid=domain_uuid,
                filename=name,
                content_type=kind,
                size_bytes=len(content),
                chunk_count=0,
                status="indexing",
                created_at=datetime.now(UTC),
            )
            try:
                prepared = await self.ingest.prepare(domain_uuid, name, content, kind)
            except ExtractionLimit as exc:
                await self._refused(info, content, exc.reason)
                raise ExtractionLimit(f"{name}: {exc.reason} (listed as failed: {info.document_uuid})") from None
            if not prepared.chunks:
                raise BadInput(f"{name}: the document has no readable text", field="content", code="bad_document")
            await self.documents.insert(info, prepared.text, hashlib.sha256(content).hexdigest())
            log.info(
                "knowledge_document_added", domain_uuid=str(domain_uuid), filename=name, passages=len(prepared.chunks)
            )
            info = await self._index_document(info, prepared.chunks, on_progress)
        self._floors.pop(domain_uuid, None)
        if info.status == "indexed":
            for older in await self.documents.find_by_filename(domain_uuid, name):
                if older.document_uuid != info.document_uuid:
                    try:
                        await self.delete_document(domain_uuid, older.document_uuid)
                    except DependencyUnavailable as exc:  # both stay listed; deleting the old one later works
                        log.warning("knowledge_replace_failed", document_uuid=str(older.document_uuid), error=str(exc))
        return info

    async def list_documents(self, domain_uuid: UUID, offset: int = 0, limit: int = 50) -> list[DocumentInfo]:
        if offset < 0:
            raise BadInput("offset must be 0 or more", field="offset")
        if not 1 <= limit <= 500:
            raise BadInput("limit must be between 1 and 500", field="limit")
        return await self.documents.page(_domain(domain_uuid), offset, limit)

    async def get_document(self, domain_uuid: UUID, document_uuid: UUID) -> DocumentInfo | None:
        return await self.documents.get(_domain(domain_uuid), _domain(document_uuid, "document_uuid"))

    async def delete_document(self, domain_uuid: UUID, document_uuid: UUID) -> bool:
        """Passages first, then the metadata: if the index is down, nothing is deleted (and it raises)."""
        domain_uuid, document_uuid = _domain(domain_uuid), _domain(document_uuid, "document_uuid")
        if await self.documents.get(domain_uuid, document_uuid) is None:
            return False
        await self.index.delete_document(domain_uuid, document_uuid)
        self._floors.pop(domain_uuid, None)
        deleted = await self.documents.delete(domain_uuid, document_uuid)
        log.info("knowledge_document_deleted", domain_uuid=str(domain_uuid), document_uuid=str(document_uuid))
        return deleted

    async def reindex(self, domain_uuid: UUID, document_uuid: UUID | None = None) -> int:
        """Cut and embed again from the kept text; one document, or the whole domain (which also moves
        it to the current embedder). Returns the passages indexed; raises `NotFound` for an unknown
        document, `DependencyUnavailable` when the index is down (the document is then "failed"), and, like
        an upload, `TooManyDocuments`; a document whose extraction failed has no text to cut (`BadInput`
        when named, passed over in a whole domain)."""
        domain_uuid = _domain(domain_uuid)
        self._floors.pop(domain_uuid, None)
        async with self.ingest.queue.admitted(domain_uuid):
            if document_uuid is None:
                await self.index.drop(domain_uuid)
                targets = await self.documents.all_uuids(domain_uuid)
            else:
                targets = [_domain(document_uuid, "document_uuid")]
            total = 0
            for target in targets:
                info = await self.documents.get(domain_uuid, target)
                text = await self.documents.text(domain_uuid, target)
                if info is None or text is None:
                    raise NotFound(f"unknown document {target}")
                if not text:  # its extraction failed: there is nothing to cut
                    if document_uuid is None:
                        continue
                    raise BadInput(
                        f"{info.filename}: its text was never extracted ({info.error}); upload it again",
                        field="document_uuid",
                        code="bad_document",
                    )
                if document_uuid is not None:
                    await self.index.delete_document(domain_uuid, target)
                prepared = await self.ingest.prepare_stored(domain_uuid, info.content_type, text)
                info = await self._index_document(info, prepared.chunks)
                if info.status == "failed":
                    raise DependencyUnavailable("knowledge index", info.error or "")
                total += info.chunk_count
            return total

    # -- retrieval -----------------------------------------------------------------------------------------

    async def search(self, domain_uuid: str, query: str, limit: int = 4) -> list[KnowledgeChunk]:
        """The domain's passages nearest to `query`, best first; `score` is the cosine similarity, `floor`
        what off-topic questions reach in the domain's collection (whether a passage answers is for
        `knowledge.grounding` to say). Raises `DependencyUnavailable` when the index or the
        embedder fails or takes longer than `search_timeout_s`."""
        return await self._retrieve(domain_uuid, query, limit) or []

    async def has_documents(self, domain_uuid: str) -> bool:
        domain = _domain(domain_uuid)
        try:
            async with asyncio.timeout(self._settings.search_timeout_s):
                return await self.index.count(domain) > 0
        except TimeoutError:
            raise DependencyUnavailable("knowledge index", "timed out") from None

    async def _retrieve(self, domain_uuid: str, query: str, limit: int) -> list[KnowledgeChunk] | None:
        domain = _domain(domain_uuid)
        query = " ".join(query.split())[:MAX_QUERY_CHARS]
        if not query:
            return []
        if not 1 <= limit <= 50:
            raise BadInput("limit must be between 1 and 50", field="limit")
        try:
            async with asyncio.timeout(self._settings.search_timeout_s):
                built_by = await self.index.embedder_of(domain)
                if built_by is None:
                    return None
                embedder = await self.embedder_of(domain)
                if built_by != embedder.name:
                    log.warning("knowledge_reindex_needed", domain_uuid=str(domain), built_by=built_by,
                                embedder=embedder.name)  # fmt: skip
                    return None
                vector = (await embedder.embed([query]))[0]
                hits = await self.index.query(domain, vector, limit)
                if hits is None:
                    return None
                floor = await self._floor(domain, embedder)
                return [dataclasses.replace(c, floor=floor) for c in await self._rescored(embedder, hits, vector)]
        except TimeoutError:
            raise DependencyUnavailable("knowledge index", "search timed out") from None

    async def _floor(self, domain: UUID, embedder: Embedder) -> float:
        """The collection's floor: the scores `PROBES` reach in it (by passage: re-scoring by sentences adds
        almost nothing to unrelated questions). Kept until the domain's documents change, here or in another
        process sharing a Chroma server (its passage count changes)."""
        count = await self.index.count(domain)
        kept = self._floors.get(domain)
        if kept is not None and kept[0] == count:
            return kept[1]
        if embedder.name not in self._probes:
            self._probes[embedder.name] = await embedder.embed(PROBES)
        floor = floor_from(await self.index.best_scores(domain, self._probes[embedder.name]))
        self._floors[domain] = (count, floor)
        log.info("knowledge_floor", domain_uuid=str(domain), floor=floor, passages=count)
        return floor

    async def embedder_of(self, domain_uuid: UUID) -> Embedder:
        """The embedder the domain's knowledge is (to be) indexed with."""
        if self._embedder_for is None:
            return self.embedder
        return await self._embedder_for(domain_uuid)

    async def _rescored(self, embedder: Embedder, hits: list[Hit], question: Sequence[float]) -> list[KnowledgeChunk]:
        """The best passages are scored again by their sentences: a caller's question is short, and it is
        closer to the one sentence that answers it than to a passage that also says other things (measured
        on the demo documents: answerable questions gain ~0.1, the others almost nothing). The nearest
        sentences become the passage's `answer`, the part the front desk reads out."""
        groups = [reading_sentences(h.text) if rank < RESCORED_HITS else [] for rank, h in enumerate(hits)]
        flat = [s for group in groups if len(group) > 1 for s in group]
        vectors = await embedder.embed(flat) if flat else []
        closeness = iter(float(np.dot(v, question)) for v in vectors)
        chunks = []
        for hit, group in zip(hits, groups, strict=True):
            score, answer = hit.score, None
            if len(group) > 1:
                scored = [next(closeness) for _ in group]
                score, answer = max(score, max(scored)), _answer(group, scored)
            chunks.append(KnowledgeChunk(hit.text, _source(hit), round(score, 4), answer))
        return sorted(chunks, key=lambda c: c.score, reverse=True)

    # -- internals -----------------------------------------------------------------------------------------

    async def _require_secretary(self, domain_uuid: UUID) -> None:
        with contextlib.suppress(SecretaryDisabled):  # an admin may prepare the knowledge before switching it on
            await self._secretaries.by_uuid(domain_uuid)

    async def _index_document(
        self, info: DocumentInfo, chunks: Sequence[TextChunk], on_progress: Progress | None = None
    ) -> DocumentInfo:
        domain_uuid, document_uuid = info.domain_uuid, info.document_uuid
        try:
            embedder = self._indexing(await self.embedder_of(domain_uuid))
            built_by = await self.index.embedder_of(domain_uuid)
            if built_by is not None and built_by != embedder.name:
                raise DependencyUnavailable(
                    "knowledge index", f"the domain was indexed with {built_by}: re-index the whole domain"
                )
            done = 0
            for start in range(0, len(chunks), INDEX_BATCH):
                batch = chunks[start : start + INDEX_BATCH]
                vectors = await embedder.embed([c.embedding_text for c in batch])
                await self.index.add(
                    domain_uuid,
                    embedder.name,
                    ids=[f"{document_uuid}:{c.index}" for c in batch],
                    vectors=vectors,
                    texts=[c.text for c in batch],
                    metadatas=[self._metadata(info, c) for c in batch],
                )
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, len(chunks))
        except asyncio.CancelledError:
            await asyncio.shield(self._failed(info, "indexing was interrupted"))
            raise
        except Exception as exc:  # the upload is kept either way; the admin sees why and can re-index
            return await self._failed(info, getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        await self.documents.set_status(domain_uuid, document_uuid, "indexed", len(chunks), None)
        return info.model_copy(update={"status": "indexed", "chunk_count": len(chunks), "error": None})

    def _indexing(self, embedder: Embedder) -> Embedder:
        """MiniLM embeds a document's passages on the ingest thread, never in the pool calls wait on (a
        question during a call still embeds there). A cloud embedder is an HTTP call: it stays as it is."""
        return embedder.on(self.ingest.embedding) if isinstance(embedder, MiniLmEmbedder) else embedder

    async def _refused(self, info: DocumentInfo, content: bytes, reason: str) -> None:
        """Kept without text (there is none to re-index from), listed as "failed" with the reason."""
        log.warning("knowledge_extraction_refused", document_uuid=str(info.document_uuid), reason=reason)
        await self.documents.insert(
            info.model_copy(update={"status": "failed", "error": reason}), "", hashlib.sha256(content).hexdigest()
        )

    @staticmethod
    def _metadata(info: DocumentInfo, chunk: TextChunk) -> Metadata:
        metadata: dict[str, str | int | float | bool] = {
            "document_uuid": str(info.document_uuid),
            "source": info.filename,
            "chunk": chunk.index,
        }
        if chunk.page:
            metadata["page"] = chunk.page
        if chunk.heading:
            metadata["heading"] = chunk.heading
        return metadata

    async def _failed(self, info: DocumentInfo, error: str) -> DocumentInfo:
        log.warning("knowledge_index_failed", document_uuid=str(info.document_uuid), error=error)
        # Passages stored before the failure must not answer for a "failed" document. If the index is down,
        # re-indexing replaces them (same ids) and deleting the document removes them.
        with contextlib.suppress(DependencyUnavailable):
            await self.index.delete_document(info.domain_uuid, info.document_uuid)
        await self.documents.set_status(info.domain_uuid, info.document_uuid, "failed", 0, error)
        return info.model_copy(update={"status": "failed", "chunk_count": 0, "error": error})

    async def ping(self) -> bool:
        return await self.index.ping()

    async def close(self) -> None:
        await self.ingest.close()
        await asyncio.to_thread(self.index.close)
