"""Measures the front desk's knowledge check (`secretary/knowledge/grounding.py`): how often it answers the
questions a document answers, and how often it says something for the questions it doesn't (target: never).

Indexes each invented business's document (tests/data/grounding: a vet, a law firm, a bakery; a garage and
a hotel written later, to check the rules on documents they were not made on) and the demo tenant's
(tests/data/knowledge/acme-*) with the real embedder and ChromaDB, asks each question through the front
desk, and prints per business: answered questions answered from the right sentence, answered wrongly, and
unanswered questions that got an answer;
beside it what the old rule (one cut-off, best score ≥ 0.40) would have done, the score ranges, the margin
of the best passage over the second, each collection's floor, and the check's time.
Writes bench/results/knowledge_threshold.json. Run: .venv/bin/python bench/knowledge_threshold.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretary.calls.prompts import prompts_for  # noqa: E402
from secretary.conversation.brain import BrainRequest, KnowledgeChunk  # noqa: E402
from secretary.conversation.front_desk import FrontDesk  # noqa: E402
from secretary.knowledge import grounding  # noqa: E402
from secretary.knowledge.chunking import reading_sentences  # noqa: E402
from secretary.runtime import Runtime  # noqa: E402
from secretary.settings import Settings  # noqa: E402
from secretary.tenants.config import SecretaryConfig  # noqa: E402

OLD_CUT_OFF = 0.40  # the one global threshold the check replaced
DATA = ROOT / "tests" / "data" / "grounding"
NO_INFORMATION = prompts_for("en").no_information
NOW = datetime(2025, 1, 7, 15, 0, tzinfo=UTC)

# The demo tenant's questions (worded as callers would), kept from the old calibration: what it answers has
# no expected phrase here, so only its answer rate and its false answers on off-topic questions are counted.
ACME = {
    "name": "Acme (demo)",
    "domain_uuid": "d0000000-0001-4000-8000-000000000001",
    "domain_name": "acme.example.com",
    "documents": sorted((ROOT / "tests" / "data" / "knowledge").glob("acme-*")),
    "answered": [
        {"question": q, "says": None}
        for q in (
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
        )
    ],
    "unanswered": [
        "When is the monorail tour?",
        "Can I rent a hovercraft?",
        "What time does the cafeteria serve lunch?",
        "Do you have vegetarian food?",
        "What's the weather going to be like tomorrow?",
        "Who won the football game last night?",
        "I'd like to book a table for two",
        "My internet is not working",
        "Do you sell life insurance?",
        "How much does a haircut cost?",
        "Do you repair cars?",
        "Can you tell me a joke?",
    ],
}


def businesses() -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = yaml.safe_load((DATA / "questions.yaml").read_text())["businesses"]
    for business in listed:
        business["documents"] = [DATA / business["document"]]
    return [*listed, ACME]


def config(business: dict[str, Any]) -> SecretaryConfig:
    return SecretaryConfig(
        domain_uuid=business["domain_uuid"],
        domain_name=business["domain_name"],
        company=business["name"],
        fallback_destination="1000",
    )


def from_document(reply: str, document: str) -> bool:
    """Whether the reply reads out a sentence of the document (the front desk's own texts don't count)."""
    return any(sentence in document for sentence in reading_sentences(reply))


def reply(business: dict[str, Any], question: str, passages: list[KnowledgeChunk]) -> str:
    request = BrainRequest(config(business), (), question, NOW, passages)
    return FrontDesk().decide(request)[0]


async def measure(runtime: Runtime, business: dict[str, Any]) -> dict[str, Any]:
    domain = UUID(business["domain_uuid"])
    texts = []
    for path in business["documents"]:
        info = await runtime.knowledge.add_document(domain, path.name, path.read_bytes())
        texts.append(" ".join((await runtime.knowledge.documents.text(domain, info.document_uuid) or "").split()))
    document = " ".join(texts)
    timings = []
    for _ in range(2):  # the first search after the upload also calibrates the collection's floor
        started = time.perf_counter()
        first = await runtime.knowledge.search(str(domain), "Can I speak to someone?")
        timings.append((time.perf_counter() - started) * 1000)
    calibration_ms = timings[0] - timings[1]
    rows: list[dict[str, Any]] = []
    check_ms: list[float] = []
    for kind, items in (("answered", business["answered"]), ("unanswered", business["unanswered"])):
        for item in items:
            question, says = (item["question"], item["says"]) if kind == "answered" else (item, None)
            passages = await runtime.knowledge.search(str(domain), question)
            started = time.perf_counter()
            grounding.answer(question, passages)
            check_ms.append((time.perf_counter() - started) * 1000)
            text = reply(business, question, passages)
            best = passages[0].score if passages else 0.0
            second = passages[1].score if len(passages) > 1 else 0.0
            said = from_document(text, document)
            rows.append(
                {
                    "kind": kind,
                    "question": question,
                    "score": round(best, 3),
                    "margin": round(best - second, 3),
                    "said": text,
                    "from_document": said,
                    # The old rule read the best passage whenever the question reached the documents.
                    "old_rule_read": best >= OLD_CUT_OFF and (said or text == NO_INFORMATION),
                    "right": said and (says is None or says in text) if kind == "answered" else not said,
                }
            )
    answered = [r for r in rows if r["kind"] == "answered"]
    unanswered = [r for r in rows if r["kind"] == "unanswered"]
    return {
        "floor": first[0].floor if first else None,
        "floor_calibration_ms": round(calibration_ms, 1),
        "check_ms_median": round(statistics.median(check_ms), 2),
        "answered": {
            "n": len(answered),
            "answered_right": sum(r["right"] for r in answered),
            "answered_wrong": sum(r["from_document"] and not r["right"] for r in answered),
            "score_min_median_max": spread([r["score"] for r in answered]),
            "margin_median": round(statistics.median(r["margin"] for r in answered), 3),
            "old_rule_answered": sum(r["old_rule_read"] for r in answered),
        },
        "unanswered": {
            "n": len(unanswered),
            "false_answers": sum(not r["right"] for r in unanswered),
            "score_min_median_max": spread([r["score"] for r in unanswered]),
            "margin_median": round(statistics.median(r["margin"] for r in unanswered), 3),
            "old_rule_false_answers": sum(r["old_rule_read"] for r in unanswered),
        },
        "questions": rows,
    }


def spread(scores: list[float]) -> list[float]:
    return [round(min(scores), 2), round(statistics.median(scores), 2), round(max(scores), 2)]


async def main() -> None:
    listed = businesses()
    with tempfile.TemporaryDirectory() as tmp:
        secretaries = Path(tmp) / "secretaries.yaml"
        example = yaml.safe_load((ROOT / "config" / "secretaries.example.yaml").read_text())["secretaries"]
        own = [config(b).model_dump(mode="json") for b in listed if b is not ACME]
        secretaries.write_text(yaml.safe_dump({"secretaries": example + own}))
        settings = Settings(
            database_url=None,
            redis_url=None,
            secretaries_file=secretaries,
            data_dir=Path(tmp) / "data",
            spool={"dir": Path(tmp) / "spool"},
        )
        runtime = Runtime.create(settings)
        try:
            results = {b["name"]: await measure(runtime, b) for b in listed}
        finally:
            await runtime.close()

    print(f"{'business':<28} {'floor':>5}  answered (right/n, wrong)  false answers (new | old ≥ {OLD_CUT_OFF})")
    for name, r in results.items():
        a, u = r["answered"], r["unanswered"]
        print(
            f"{name:<28} {r['floor']:>5}  {a['answered_right']:>3}/{a['n']:<3} {a['answered_wrong']:>2}"
            f"{'':>17}{u['false_answers']:>3}/{u['n']:<3} | {u['old_rule_false_answers']}/{u['n']}"
        )
        for row in r["questions"]:
            if not row["right"]:
                shown = "(no information)" if row["said"] == NO_INFORMATION else row["said"]
                print(f"    {row['kind']:<10} {row['score']:.2f}  {row['question']}  →  {shown}")
    total_a = sum(r["answered"]["n"] for r in results.values())
    right = sum(r["answered"]["answered_right"] for r in results.values())
    total_u = sum(r["unanswered"]["n"] for r in results.values())
    false = sum(r["unanswered"]["false_answers"] for r in results.values())
    old_false = sum(r["unanswered"]["old_rule_false_answers"] for r in results.values())
    print(f"\nall: answered {right}/{total_a} ({right / total_a:.0%}), false answers {false}/{total_u}")
    print(f"old rule (score ≥ {OLD_CUT_OFF}): false answers {old_false}/{total_u}")
    summary = {
        "embedder": "all-MiniLM-L6-v2 (numpy), cosine similarity; check: secretary/knowledge/grounding.py",
        "probe_margin": grounding.PROBE_MARGIN,
        "floor_bounds": [grounding.FLOOR_MIN, grounding.FLOOR_MAX],
        "all": {
            "answered": right,
            "answerable": total_a,
            "false_answers": false,
            "unanswerable": total_u,
            "old_rule_false_answers": old_false,
        },
        "businesses": results,
    }
    out = ROOT / "bench" / "results" / "knowledge_threshold.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
