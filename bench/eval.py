"""The receptionist's pass rate: every scenario of eval/scenarios/ (four invented businesses) and of
eval/held_out/ (written after the front desk's last change) through the real v1 API, caller speech spoken by
Piper over a degraded phone line (8 kHz, µ-law, noise at --snr-db), the front desk or an OpenAI-compatible
model (--llm-base-url) answering. The tables are `voiceai eval`'s; this run also records them, with the
machine and the commit, in bench/results/eval.md.

Run: .venv/bin/python bench/eval.py [--snr-db 20] [--llm-base-url http://127.0.0.1:11434/v1 --llm-model qwen2.5:1.5b]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from secretary.observability import configure_logging  # noqa: E402
from secretary.settings import Settings  # noqa: E402
from secretary.speech.local_engines import LocalModels  # noqa: E402
from voiceai.evaluation import DEFAULT_SCENARIOS, evaluate  # noqa: E402

HELD_OUT = ROOT / "eval" / "held_out"  # written after the front desk's last change, so not tuned on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--llm-base-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval.md")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    settings = Settings()
    models = LocalModels(settings.engines)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    parts = [
        f"# `voiceai eval`\n\nCommit {commit.stdout.strip() or '?'}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; line noise {args.snr_db:g} dB SNR, µ-law, 8 kHz.\n"
    ]
    for title, folder in (
        ("The scenarios (eval/scenarios)", DEFAULT_SCENARIOS),
        ("Held out (eval/held_out)", HELD_OUT),
    ):
        report = asyncio.run(
            evaluate(
                [folder],
                settings,
                models,
                llm_base_url=args.llm_base_url,
                llm_model=args.llm_model,
                snr_db=args.snr_db,
            )
        )
        parts.append(f"## {title}: {report.passed}/{len(report.results)} ({report.rate:.0%})\n\n{report.table()}\n")
        print(report.table())
    args.out.write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
