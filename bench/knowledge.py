"""Knowledge-base speed: ingest (passages/s, through `KnowledgeBase.add_document`: extraction, chunking,
MiniLM embedding, ChromaDB upsert, metadata) and question latency p50/p95 (`KnowledgeBase.search`: embed the
question, query Chroma, re-score the best passages by sentence) at 1k and 10k passages in one domain.

The documents are synthetic product manuals (Markdown, headings, ~400-character passages), generated with a
fixed seed. The embedded defaults are used (file metadata store, `PersistentClient`), as `make run` does.
Results: bench/results/knowledge.json. Run: .venv/bin/python bench/knowledge.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretary.observability import configure_logging  # noqa: E402
from secretary.runtime import Runtime  # noqa: E402
from secretary.settings import Settings  # noqa: E402

ACME = UUID("d0000000-0001-4000-8000-000000000001")
PRODUCTS_PER_DOCUMENT = 25  # ~50 passages per document

_THINGS = [
    "anvil",
    "rocket",
    "skate",
    "portable",
    "hole",
    "spring",
    "catapult",
    "magnet",
    "glue",
    "sled",
    "kite",
    "parachute",
    "drill",
    "lamp",
]
_ADJECTIVES = [
    "heavy",
    "light",
    "red",
    "blue",
    "folding",
    "giant",
    "compact",
    "industrial",
    "silent",
    "solar",
    "armoured",
    "deluxe",
]
_FACTS = [
    "The {p} costs {n} dollars and ships within {d} working days.",
    "Every {p} carries a {w}-year warranty against defects in materials and workmanship.",
    "The {p} weighs {n} pounds and measures {d} feet across when fully assembled.",
    "Replacement parts for the {p} are sold in packs of {d} for {n} dollars.",
    "Customers in Canada and Mexico receive the {p} by freight, which takes {d} more days.",
    "Store the {p} in a dry place and never leave it in direct sunlight for more than {d} hours.",
    "The {p} was introduced in {y} and has been updated {d} times since then.",
    "To return a {p}, call the service desk with your order number within {w}0 days.",
    "Children under {w}2 may only use the {p} under adult supervision.",
    "The {p} runs for {n} minutes on one charge and recharges in {d} hours.",
]


def _product(rng: random.Random, index: int) -> str:
    return f"{rng.choice(_ADJECTIVES)} {rng.choice(_THINGS)} model {index}"


def manual(rng: random.Random, number: int) -> str:
    lines = [f"# Product manual {number}", ""]
    for i in range(PRODUCTS_PER_DOCUMENT):
        product = _product(rng, number * 100 + i)
        lines += [f"## The {product}", ""]
        for _ in range(2):
            facts = rng.sample(_FACTS, 3)
            lines.append(
                " ".join(
                    f.format(
                        p=product,
                        n=rng.randint(5, 900),
                        d=rng.randint(2, 9),
                        w=rng.randint(1, 9),
                        y=rng.randint(1950, 2024),
                    )
                    for f in facts
                )
            )
            lines.append("")
    return "\n".join(lines)


def questions(rng: random.Random, documents: int, count: int) -> list[str]:
    templates = [
        "How much does the {p} cost?",
        "What is the warranty on the {p}?",
        "How heavy is the {p}?",
        "Can my child use the {p}?",
        "How do I return a {p}?",
        "How long does the battery of the {p} last?",
        "When can you deliver a {p} to Canada?",
    ]
    out = []
    for _ in range(count):
        number = rng.randrange(documents)
        product = f"{rng.choice(_THINGS)} model {number * 100 + rng.randrange(PRODUCTS_PER_DOCUMENT)}"
        out.append(rng.choice(templates).format(p=product))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(sizes: list[int], query_count: int) -> dict[str, Any]:
    rng = random.Random(20251123)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=None,
            redis_url=None,
            secretaries_file=ROOT / "config" / "secretaries.example.yaml",
            data_dir=Path(tmp) / "data",
            spool={"dir": Path(tmp) / "spool"},
        )
        runtime = Runtime.create(settings)
        kb = runtime.knowledge
        try:
            await runtime.warm_up()
            passages, documents, ingest_seconds = 0, 0, 0.0
            for size in sorted(sizes):
                added, started = 0, time.perf_counter()
                while passages < size:
                    text = manual(rng, documents).encode()
                    info = await kb.add_document(ACME, f"manual-{documents:05d}.md", text)
                    assert info.status == "indexed", info.error
                    documents += 1
                    passages += info.chunk_count
                    added += info.chunk_count
                seconds = time.perf_counter() - started
                ingest_seconds += seconds
                asked = questions(rng, documents, query_count)
                await kb.search(str(ACME), asked[0])  # first query opens the collection
                latencies, retrieval = [], []
                for question in asked:
                    t0 = time.perf_counter()
                    hits = await kb.search(str(ACME), question)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    vector = (await kb.embedder.embed([question]))[0]
                    t1 = time.perf_counter()
                    await kb.index.query(ACME, vector, 4)
                    retrieval.append((time.perf_counter() - t1) * 1000)
                    assert hits
                row = {
                    "passages": passages,
                    "documents": documents,
                    "ingest_passages": added,
                    "ingest_seconds": round(seconds, 1),
                    "ingest_passages_per_s": round(added / seconds, 1),
                    "queries": len(asked),
                    "search_ms_p50": round(percentile(latencies, 0.5), 1),
                    "search_ms_p95": round(percentile(latencies, 0.95), 1),
                    "chroma_query_ms_p50": round(percentile(retrieval, 0.5), 2),
                    "chroma_query_ms_p95": round(percentile(retrieval, 0.95), 2),
                    "search_ms_mean": round(statistics.fmean(latencies), 1),
                }
                results.append(row)
                print(
                    f"{passages:>6} passages: ingest {row['ingest_passages_per_s']} passages/s "
                    f"({added} in {seconds:.0f} s); search p50 {row['search_ms_p50']} ms, "
                    f"p95 {row['search_ms_p95']} ms "
                    f"(Chroma query alone p50 {row['chroma_query_ms_p50']} ms, p95 {row['chroma_query_ms_p95']} ms)",
                    flush=True,
                )
        finally:
            await runtime.close()
    return {
        "benchmark": "knowledge",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "embedder": "all-MiniLM-L6-v2 in numpy (1 BLAS thread), batches of 8 in the CpuPool",
        "index": "ChromaDB PersistentClient (embedded), cosine, one collection per domain",
        "settings": {"chunk_chars": settings.knowledge.chunk_chars, "overlap": settings.knowledge.chunk_overlap_chars},
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="passages in the domain when latency is measured")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "knowledge.json")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    report = asyncio.run(run([int(s) for s in args.sizes.split(",")], args.queries))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
