"""ChromaDB as the passage index: one collection per domain, our own vectors, cosine distance.

A domain's passages live in their own collection, named from its `domain_uuid`: a query can only ever
reach the domain it names. The client is embedded (`PersistentClient` under `data_dir/chroma`, one process
at a time) unless a Chroma server URL is set (`HttpClient`, shared by any number of processes). Chroma's
API is synchronous (disk or HTTP), so every call runs in a thread; any failure of Chroma is a
`DependencyUnavailable` (503), never a crash of the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import chromadb
import numpy as np
import structlog
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import NotFoundError

from secretary.errors import DependencyUnavailable
from secretary.settings import KnowledgeSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")

Metadata = Mapping[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class Hit:
    text: str
    metadata: Metadata
    score: float  # cosine similarity, 1 = same direction


def collection_name(domain_uuid: UUID) -> str:
    return f"voiceai-kb-{domain_uuid}"


class ChromaIndex:
    def __init__(self, settings: KnowledgeSettings, embedded_path: Path) -> None:
        self._settings = settings
        self._path = embedded_path
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()
        self._collections: dict[UUID, Collection] = {}
        self._lock_file: BinaryIO | None = None

    def _connect(self) -> ClientAPI:
        with self._lock:
            if self._client is None:
                # Chroma's telemetry would phone home on every start; we never want that.
                settings = ChromaSettings(anonymized_telemetry=False)
                url = self._settings.chroma_url
                if url:
                    parts = urlsplit(url if "://" in url else f"http://{url}")
                    token = self._settings.chroma_token
                    self._client = chromadb.HttpClient(
                        host=parts.hostname or "127.0.0.1",
                        port=parts.port or (443 if parts.scheme == "https" else 8000),
                        ssl=parts.scheme == "https",
                        headers={"Authorization": f"Bearer {token.get_secret_value()}"} if token else None,
                        settings=settings,
                    )
                else:
                    self._path.mkdir(parents=True, exist_ok=True)
                    self._lock_embedded()
                    self._client = chromadb.PersistentClient(path=str(self._path), settings=settings)
            return self._client

    def _lock_embedded(self) -> None:
        """Embedded Chroma is one process's: another process's writes reach the files but not this one's
        in-memory index (measured: its queries kept missing them until a restart). A POSIX lock (owned by
        the process, so several indexes of one process share it) makes a second process fail clearly."""
        if self._lock_file is not None:
            return
        handle = (self._path / ".voiceai.lock").open("a+b")
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DependencyUnavailable(
                "chromadb",
                f"the embedded index {self._path} is open in another process (the running service?): stop it, "
                "use the admin API, or share a Chroma server (knowledge.chroma_url)",
            ) from None
        self._lock_file = handle

    async def _run(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except DependencyUnavailable:
            raise
        except Exception as exc:  # Chroma raises its own, httpx's, sqlite's and plain errors alike
            log.warning("chroma_failed", error=f"{type(exc).__name__}: {exc}")
            with self._lock:
                self._collections.clear()  # a collection handle may be stale after a server restart
            raise DependencyUnavailable("chromadb", type(exc).__name__) from exc

    def _collection(self, domain_uuid: UUID, embedder: str | None) -> Collection | None:
        """The domain's collection; created when `embedder` is given, else None when it doesn't exist."""
        with self._lock:
            cached = self._collections.get(domain_uuid)
        if cached is not None:
            return cached
        client = self._connect()
        name = collection_name(domain_uuid)
        if embedder is None:
            try:
                collection = client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        else:
            collection = client.get_or_create_collection(
                name,
                embedding_function=None,  # our vectors only: Chroma's default would download a model
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"domain_uuid": str(domain_uuid), "embedder": embedder},
            )
        with self._lock:
            self._collections[domain_uuid] = collection
        return collection

    async def add(
        self,
        domain_uuid: UUID,
        embedder: str,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
    ) -> None:
        def run() -> None:
            collection = self._collection(domain_uuid, embedder)
            assert collection is not None
            collection.upsert(
                ids=list(ids),
                embeddings=np.asarray(vectors, dtype=np.float32),
                documents=list(texts),
                metadatas=[dict(m) for m in metadatas],
            )

        await self._run(run)

    async def delete_document(self, domain_uuid: UUID, document_uuid: UUID) -> None:
        def run() -> None:
            collection = self._collection(domain_uuid, None)
            if collection is not None:
                collection.delete(where={"document_uuid": str(document_uuid)})

        await self._run(run)

    async def drop(self, domain_uuid: UUID) -> None:
        """Remove the domain's whole collection (re-indexing a domain starts from nothing)."""

        def run() -> None:
            with self._lock:
                self._collections.pop(domain_uuid, None)
            client = self._connect()
            with contextlib.suppress(NotFoundError):
                client.delete_collection(collection_name(domain_uuid))

        await self._run(run)

    async def count(self, domain_uuid: UUID) -> int:
        def run() -> int:
            collection = self._collection(domain_uuid, None)
            return 0 if collection is None else collection.count()

        return await self._run(run)

    async def embedder_of(self, domain_uuid: UUID) -> str | None:
        def run() -> str | None:
            collection = self._collection(domain_uuid, None)
            if collection is None:
                return None
            return str((collection.metadata or {}).get("embedder", "")) or None

        return await self._run(run)

    async def query(self, domain_uuid: UUID, vector: Sequence[float], limit: int) -> list[Hit] | None:
        """The `limit` nearest passages, best first; None when the domain has no collection or it is empty."""

        def run() -> list[Hit] | None:
            collection = self._collection(domain_uuid, None)
            if collection is None or collection.count() == 0:
                return None
            result = collection.query(
                query_embeddings=np.asarray([vector], dtype=np.float32),
                n_results=limit,
                include=["documents", "metadatas", "distances"],
            )
            documents = (result.get("documents") or [[]])[0]
            metadatas = (result.get("metadatas") or [[]])[0]
            distances = (result.get("distances") or [[]])[0]
            return [
                Hit(text or "", dict(meta or {}), 1.0 - float(distance))  # type: ignore[arg-type]
                for text, meta, distance in zip(documents, metadatas, distances, strict=True)
            ]

        return await self._run(run)

    async def best_scores(self, domain_uuid: UUID, vectors: Sequence[Sequence[float]]) -> list[float]:
        """For each vector, the score of its nearest passage (one query for all); [] for an empty domain."""

        def run() -> list[float]:
            collection = self._collection(domain_uuid, None)
            if collection is None or collection.count() == 0 or not vectors:
                return []
            result = collection.query(
                query_embeddings=np.asarray(vectors, dtype=np.float32), n_results=1, include=["distances"]
            )
            return [1.0 - float(row[0]) for row in result.get("distances") or [] if row]

        return await self._run(run)

    async def ping(self) -> bool:
        try:
            await self._run(lambda: self._connect().heartbeat())
        except DependencyUnavailable:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._collections.clear()
        if client is not None:
            close: Any = getattr(client, "close", None)
            if callable(close):
                close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
