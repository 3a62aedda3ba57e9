"""The `Embedder` interface (text → unit vectors), the offline one (MiniLM, the default) and the cloud ones
(OpenAI `/v1/embeddings`, Ollama `/api/embed`), chosen per domain (`providers.embeddings`).

Vectors are unit length, so the index's cosine distance is 1 − the dot product and a search score is
the cosine similarity. An embedder's `name` is kept with each domain's collection: vectors of different
embedders can't be compared, so a collection built by another embedder must be re-indexed — and a cloud
embedder that fails during a call can't be replaced by MiniLM for that query: the turn goes on without
knowledge (the FAQ and the brain still answer).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Protocol

import aiohttp
from openai import AsyncOpenAI

from secretary.errors import DependencyUnavailable, ProviderFailed
from secretary.provider_health import ProviderHealth, describe
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels

# Small batches: a batch holds a pool worker for ~0.3–0.5 s, and calls' speech engines may wait behind it.
BATCH = 8
QUERY_TEXTS = 8  # a question, or the sentences of a passage re-scored against it


class Embedder(Protocol):
    name: str

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLmEmbedder:
    """all-MiniLM-L6-v2, run in numpy in the given pool: a call's question in the engine `CpuPool` (one worker
    at a time: the others stay free for calls' speech engines), a document's passages on the ingest thread
    (`on`). Figures: bench/knowledge.py."""

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, models: LocalModels, pool: CpuPool) -> None:
        self._models = models
        self._pool = pool

    def on(self, pool: CpuPool) -> MiniLmEmbedder:
        """The same model, run in another pool (a document's passages go to the ingest thread)."""
        return MiniLmEmbedder(self._models, pool)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            vectors.extend(await self._pool.run(self._run, batch))
        return vectors

    def _run(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self._models.minilm().encode(texts, batch_size=BATCH).tolist()
        return rows


def unit(vector: Sequence[float]) -> list[float]:
    """The index compares by cosine distance as 1 − dot product: every vector must be unit length."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [float(x) / norm for x in vector] if norm > 0 else [float(x) for x in vector]


OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAiEmbedder:
    """`/v1/embeddings` through the official `openai` SDK (OpenAI, or any server speaking it)."""

    def __init__(self, client: AsyncOpenAI, model: str = "text-embedding-3-small", batch: int = 64) -> None:
        self.name = f"openai:{model}"
        self.dimensions = OPENAI_DIMENSIONS.get(model, 0)
        self._client = client
        self._model = model
        self._batch = batch

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            batch = list(texts[start : start + self._batch])
            response = await self._client.embeddings.create(model=self._model, input=batch)
            rows = sorted(response.data, key=lambda row: row.index)
            if len(rows) != len(batch):
                raise ValueError(f"{self.name} returned {len(rows)} vectors for {len(batch)} texts")
            vectors.extend(unit(row.embedding) for row in rows)
        if vectors:
            self.dimensions = len(vectors[0])
        return vectors

    async def probe(self) -> None:
        await self._client.models.list()


class OllamaEmbedder:
    """Ollama's documented `POST /api/embed` (`{"model", "input": [...]}` → `{"embeddings": [[...]]}`), over
    aiohttp. (Ollama's OpenAI-compatible `/v1/embeddings` also works, as `openai` with a `base_url`.)"""

    def __init__(
        self, base_url: str, model: str = "nomic-embed-text", timeout_s: float = 10.0, batch: int = 32
    ) -> None:
        self.name = f"ollama:{model}"
        self.dimensions = 0  # known after the first answer
        self._url = base_url.rstrip("/")
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._batch = batch
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            batch = list(texts[start : start + self._batch])
            async with self._client().post(f"{self._url}/api/embed", json={"model": self._model, "input": batch}) as r:
                if r.status != 200:
                    raise OllamaError(f"Ollama answered HTTP {r.status}", r.status, r.headers.get("Retry-After"))
                body = await r.json(content_type=None)
            rows = body.get("embeddings") if isinstance(body, dict) else None
            if not isinstance(rows, list) or len(rows) != len(batch):
                raise OllamaError("Ollama returned no embeddings for the texts")
            vectors.extend(unit(row) for row in rows)
        if vectors:
            self.dimensions = len(vectors[0])
        return vectors

    async def probe(self) -> None:
        async with self._client().get(f"{self._url}/api/tags") as response:
            if response.status != 200:
                raise OllamaError(f"Ollama answered HTTP {response.status}", response.status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class OllamaError(ProviderFailed):
    def __init__(self, message: str, status_code: int | None = None, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = float(retry_after) if retry_after and retry_after.isdigit() else None


class GuardedEmbedder:
    """A cloud embedder behind the process's `ProviderHealth`: a failure (or a benched provider) is a
    `DependencyUnavailable`, so a call goes on without knowledge at once instead of waiting on it, and an
    upload is kept as "failed" with the reason, to re-index later."""

    def __init__(
        self, inner: OpenAiEmbedder | OllamaEmbedder, health: ProviderHealth, key: str, query_timeout_s: float
    ) -> None:
        """`query_timeout_s`: a question's embedding must come by then (within the search's own limit, so a
        hanging provider is benched, not merely given up on); an indexing batch gets ten times as long."""
        self.inner = inner
        self.name = inner.name
        self.health_key = key
        self._health = health
        self._query_timeout = query_timeout_s

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self._health.available(self.health_key):
            raise DependencyUnavailable("embeddings", f"{self.name} is benched after a failure")
        timeout = self._query_timeout * (1 if len(texts) <= QUERY_TEXTS else 10)
        try:
            async with asyncio.timeout(timeout):
                vectors = await self.inner.embed(texts)
        except TimeoutError:
            exc = TimeoutError(f"no vectors within {timeout:.1f}s")
            self._health.failed(self.health_key, exc, self.inner.probe)
            raise DependencyUnavailable("embeddings", f"{self.name}: {describe(exc)}") from None
        except Exception as exc:
            self._health.failed(self.health_key, exc, self.inner.probe)
            raise DependencyUnavailable("embeddings", f"{self.name}: {describe(exc)}") from None
        self._health.succeeded(self.health_key)
        return vectors
