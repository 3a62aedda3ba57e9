"""The `Embedder` interface (text → unit vectors) and the offline one, MiniLM.

Vectors are unit length, so the index's cosine distance is 1 − the dot product and a search score is
the cosine similarity. An embedder's `name` is kept with each domain's collection: vectors of different
embedders can't be compared, so a collection built by another embedder must be re-indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels

# Small batches: a batch holds a pool worker for ~0.3–0.5 s, and calls' speech engines may wait behind it.
BATCH = 8


class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLmEmbedder:
    """all-MiniLM-L6-v2, run in numpy in the `CpuPool` (one worker at a time: the others stay free for calls'
    speech engines). Figures: bench/knowledge.py."""

    name = "all-MiniLM-L6-v2"
    dimensions = 384

    def __init__(self, models: LocalModels, pool: CpuPool) -> None:
        self._models = models
        self._pool = pool

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            vectors.extend(await self._pool.run(self._run, batch))
        return vectors

    def _run(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self._models.minilm().encode(texts, batch_size=BATCH).tolist()
        return rows
