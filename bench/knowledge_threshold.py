"""Calibrates the front desk's knowledge threshold (`KNOWLEDGE_SCORE_MIN`): how similar the best passage is
to a caller's question when the documents answer it, and when they don't.

Indexes the demo tenant's documents (tests/data/knowledge/acme-*) with the real embedder and ChromaDB, asks
labelled questions, and prints the best score of each; writes bench/results/knowledge_threshold.json.
Run: .venv/bin/python bench/knowledge_threshold.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretary.conversation.front_desk import KNOWLEDGE_SCORE_MIN  # noqa: E402
from secretary.runtime import Runtime  # noqa: E402
from secretary.settings import Settings  # noqa: E402

ACME = UUID("d0000000-0001-4000-8000-000000000001")
DOCUMENTS = ROOT / "tests" / "data" / "knowledge"

# Questions the acme documents answer, worded as callers would, not as the documents are.
ANSWERED = [
    "How long do I have to send something back?",
    "Can I get my money back if I don't like it?",
    "What's the warranty on an anvil?",
    "Are the wheels of the rocket skates covered by the warranty?",
    "How do I make a warranty claim?",
    "Do you deliver to Canada?",
    "How long does delivery take?",
    "How much is express shipping?",
    "Can I pay with American Express?",
    "Do you take cheques?",
    "Can my company get an invoice?",
    "What sizes do the portable holes come in?",
    "Can I stack portable holes?",
    "Do I need a helmet for the rocket skates?",
    "How long does the fuel last?",
    "Can my ten year old use rocket skates?",
    "How much are replacement fuel canisters?",
    "Can I return a custom painted anvil?",
    "How are heavy anvils delivered?",
    "what do you sell",
]
# Questions they don't answer: other companies' facts (globex's documents), and everyday small talk.
UNANSWERED = [
    "When is the monorail tour?",
    "Can I rent a hovercraft?",
    "What time does the cafeteria serve lunch?",
    "Do you have vegetarian food?",
    "What's the weather going to be like tomorrow?",
    "Can you recommend a good pizza place nearby?",
    "Who won the football game last night?",
    "Is the bank open on Sundays?",
    "I'd like to book a table for two",
    "How old is the president?",
    "My internet is not working",
    "Do you sell life insurance?",
    "What's your favourite colour?",
    "Can I bring my dog to the office?",
    "How much does a haircut cost?",
    "Is there a train to Boston today?",
    "I want to cancel my gym membership",
    "Do you repair cars?",
    "What is the capital of France?",
    "Can you tell me a joke?",
]


async def best_scores(runtime: Runtime, questions: list[str]) -> list[tuple[str, float, str]]:
    rows = []
    for question in questions:
        hits = await runtime.knowledge.search(str(ACME), question, limit=1)
        rows.append((question, hits[0].score if hits else 0.0, hits[0].text[:70] if hits else ""))
    return rows


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=None,
            redis_url=None,
            secretaries_file=ROOT / "config" / "secretaries.example.yaml",
            data_dir=Path(tmp) / "data",
            spool={"dir": Path(tmp) / "spool"},
        )
        runtime = Runtime.create(settings)
        try:
            for path in sorted(DOCUMENTS.glob("acme-*")):
                await runtime.knowledge.add_document(ACME, path.name, path.read_bytes())
            answered = await best_scores(runtime, ANSWERED)
            unanswered = await best_scores(runtime, UNANSWERED)
        finally:
            await runtime.close()

    for label, rows in (("answered", answered), ("not answered", unanswered)):
        print(f"\n{label}:")
        for question, score, passage in sorted(rows, key=lambda r: r[1]):
            print(f"  {score:.3f}  {question:<62} → {passage}")
    low = min(s for _, s, _ in answered)
    high = max(s for _, s, _ in unanswered)
    wrong_answered = sum(s < KNOWLEDGE_SCORE_MIN for _, s, _ in answered)
    wrong_unanswered = sum(s >= KNOWLEDGE_SCORE_MIN for _, s, _ in unanswered)
    summary = {
        "embedder": "all-MiniLM-L6-v2 (numpy), cosine similarity",
        "threshold": KNOWLEDGE_SCORE_MIN,
        "answered": {
            "n": len(answered),
            "min": round(low, 3),
            "median": round(statistics.median(s for _, s, _ in answered), 3),
            "below_threshold": wrong_answered,
        },
        "not_answered": {
            "n": len(unanswered),
            "max": round(high, 3),
            "median": round(statistics.median(s for _, s, _ in unanswered), 3),
            "at_or_above_threshold": wrong_unanswered,
        },
        "questions": {q: round(s, 4) for q, s, _ in answered + unanswered},
    }
    print(f"\nthreshold {KNOWLEDGE_SCORE_MIN}: answered min {low:.3f}, not-answered max {high:.3f}")
    print(f"misses: {wrong_answered} answerable below, {wrong_unanswered} unanswerable at or above")
    out = ROOT / "bench" / "results" / "knowledge_threshold.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
