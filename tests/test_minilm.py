"""The numpy MiniLM gives sentence-transformers' vectors (to 1e-4), without torch.

`tests/data/minilm_reference.json` holds vectors computed once with sentence-transformers 6.2.0 on torch
2.13.0 (CPU) from the same model files, in a throwaway environment outside the repository (see the file's
`computed_with`): the texts cover short, empty, long (past the 256-token limit), accented, CJK and emoji
input, digits and punctuation, tabs and CR/LF.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from secretary.knowledge.embedders import MiniLmEmbedder
from secretary.settings import EngineSettings
from secretary.speech.cpu_pool import CpuPool
from secretary.speech.local_engines import LocalModels

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def models() -> LocalModels:
    """The model itself: the session's `models` replays vectors it has made (tests/support/models.py)."""
    return LocalModels(EngineSettings())


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    return REFERENCE["sentences"], np.array(REFERENCE["vectors"], dtype=np.float32)


def test_batched_vectors_match_sentence_transformers(
    models: LocalModels, reference: tuple[list[str], np.ndarray]
) -> None:
    sentences, expected = reference
    got = models.minilm().encode(sentences)
    assert got.shape == expected.shape == (len(sentences), 384)
    assert float(np.abs(got - expected).max()) < TOLERANCE


def test_each_vector_alone_matches_too(models: LocalModels, reference: tuple[list[str], np.ndarray]) -> None:
    sentences, expected = reference
    model = models.minilm()
    for sentence, vector in zip(sentences, expected, strict=True):
        assert float(np.abs(model.encode([sentence])[0] - vector).max()) < TOLERANCE, sentence[:40]


def test_long_text_is_cut_at_256_tokens_like_sentence_transformers(models: LocalModels) -> None:
    long_text = max(REFERENCE["sentences"], key=len)
    model = models.minilm()
    assert model.count_tokens(long_text) == 256
    assert float(np.abs(model.encode([long_text])[0] - model.encode([long_text + " more words"])[0]).max()) < 1e-6


def test_vectors_are_unit_length(models: LocalModels) -> None:
    vectors = models.minilm().encode(["Hello", "A much longer sentence about delivery times and prices."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_torch_is_never_imported(models: LocalModels) -> None:
    models.minilm().encode(["anything"])
    assert "torch" not in sys.modules
    assert "sentence_transformers" not in sys.modules


async def test_embedder_runs_in_the_pool_and_keeps_order(models: LocalModels) -> None:
    pool = CpuPool(1)
    try:
        texts = [f"Question number {i} about anvils" + "!" * (i % 3) for i in range(19)]  # > one batch
        vectors = await MiniLmEmbedder(models, pool).embed(texts)
    finally:
        pool.close()
    expected = models.minilm().encode(texts)
    assert len(vectors) == 19
    assert float(np.abs(np.array(vectors) - expected).max()) < 1e-6
