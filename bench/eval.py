"""The receptionist's pass rate: every scenario of eval/scenarios/ (four invented businesses) through the real
v1 API, caller speech spoken by Piper over a degraded phone line (8 kHz, µ-law, noise at --snr-db), the front
desk or an OpenAI-compatible model (--llm-base-url) answering. The table is `voiceai eval`'s; this run also
records it, with the machine and the commit, in bench/results/eval.md.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--snr-db", type=float, default=20.0)
    parser.add_argument("--llm-base-url")
    parser.add_argument("--llm-model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval.md")
    args = parser.parse_args()
    configure_logging("WARNING", "console")
    settings = Settings()
    report = asyncio.run(
        evaluate(
            [DEFAULT_SCENARIOS],
            settings,
            LocalModels(settings.engines),
            llm_base_url=args.llm_base_url,
            llm_model=args.llm_model,
            snr_db=args.snr_db,
        )
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    header = (
        f"# `voiceai eval` — {report.passed}/{len(report.results)} ({report.rate:.0%})\n\n"
        f"Commit {commit.stdout.strip() or '?'}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; line noise {args.snr_db:g} dB SNR, µ-law, 8 kHz.\n\n"
    )
    args.out.write_text(header + report.table() + "\n", encoding="utf-8")
    print(report.table())


if __name__ == "__main__":
    main()
