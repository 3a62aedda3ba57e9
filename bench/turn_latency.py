"""Turn latency of the v1 (turn-based) service with the offline engines, over real HTTP.

A ~3 s utterance (Piper speech at 8 kHz, as FreeSWITCH records it) is written into the call's spool folder and
posted as a turn, as the Lua script does. Reported per stage (median, p95): STT, brain, TTS, the whole turn as
the client sees it, and the service's own overhead (client-seen time minus STT, brain and TTS). Two runs: the
reply spoken fresh (TTS cache emptied before each turn) and the reply served from the TTS cache. Also the
greeting: the first call synthesises it, later calls get it from the cache.

    .venv/bin/python bench/turn_latency.py [--turns 20]

Results: bench/results/turn_latency.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from piper import SynthesisConfig

from ivr_service.app import create_app
from secretary.observability import configure_logging
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, wav_bytes

ROOT = Path(__file__).resolve().parent.parent
UTTERANCE = "Hello, could you tell me what your opening hours are this week?"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 1), "p95_ms": round(pct(values, 95), 1), "n": len(values)}


async def run(turns: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-turn-"))
    settings = Settings(
        database_url=None,
        redis_url=None,
        secretaries_file=ROOT / "config" / "secretaries.example.yaml",
        data_dir=work / "data",
        spool={"dir": work / "spool"},
        log_level="WARNING",
    )
    runtime = Runtime.create(settings)
    await runtime.warm_up()
    voice = runtime.models.piper()
    speech = b"".join(
        c.audio_int16_bytes for c in voice.synthesize(UTTERANCE, syn_config=SynthesisConfig(noise_scale=0.0))
    )
    utterance = Pcm(speech, voice.config.sample_rate).resampled(8000)
    recording = wav_bytes(utterance)

    runner = web.AppRunner(create_app(runtime, own_runtime=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    results: dict[str, Any] = {"utterance_seconds": round(utterance.duration_s, 2)}
    try:
        async with aiohttp.ClientSession() as http:

            async def start_call() -> tuple[dict[str, Any], float]:
                began = time.perf_counter()
                async with http.post(
                    f"{base}/api/v1/calls", json={"domain_name": "acme.example.com", "call_uuid": str(uuid.uuid4())}
                ) as response:
                    body = await response.json()
                return body, (time.perf_counter() - began) * 1000

            _, first_greeting = await start_call()
            greetings = [(await start_call())[1] for _ in range(turns)]
            results["greeting_first_call_ms"] = round(first_greeting, 1)
            results["greeting_cached"] = summary(greetings)

            for mode in ("fresh_tts", "cached_tts"):
                stages: dict[str, list[float]] = {k: [] for k in ("stt", "brain", "tts", "client_total", "overhead")}
                for _ in range(turns):
                    call, _ = await start_call()
                    if mode == "fresh_tts":
                        shutil.rmtree(settings.spool.dir / "cache", ignore_errors=True)
                    path = Path(call["record"]["file"])
                    await asyncio.to_thread(path.write_bytes, recording)
                    began = time.perf_counter()
                    async with http.post(
                        f"{base}/api/v1/calls/{call['call_uuid']}/turns", json={"recording_file": str(path)}
                    ) as response:
                        body = await response.json()
                    wall = (time.perf_counter() - began) * 1000
                    t = body["timings"]
                    stages["stt"].append(t["stt_ms"])
                    stages["brain"].append(t["brain_ms"])
                    stages["tts"].append(t["tts_ms"])
                    stages["client_total"].append(wall)
                    stages["overhead"].append(wall - t["stt_ms"] - t["brain_ms"] - t["tts_ms"])
                    async with http.post(f"{base}/api/v1/calls/{call['call_uuid']}/end", json={}) as response:
                        await response.read()
                results[mode] = {stage: summary(values) for stage, values in stages.items()}
                results[mode]["heard"] = body["heard"]
    finally:
        await runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return results


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# v1 turn latency (offline engines)",
        "",
        f"{meta['when']} · {meta['machine']} · {meta['cpus']} CPUs · {meta['turns']} turns per row · "
        f"utterance {results['utterance_seconds']} s at 8 kHz",
        "",
        "| run | stage | median ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for mode in ("fresh_tts", "cached_tts"):
        for stage in ("stt", "brain", "tts", "overhead", "client_total"):
            row = results[mode][stage]
            lines.append(f"| {mode} | {stage} | {row['median_ms']} | {row['p95_ms']} |")
    greeting = results["greeting_cached"]
    lines += [
        "",
        f"Greeting: first call {results['greeting_first_call_ms']} ms (synthesised), then from the TTS cache "
        f"median {greeting['median_ms']} ms, p95 {greeting['p95_ms']} ms (client-seen POST /api/v1/calls).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    configure_logging("WARNING")
    results = asyncio.run(run(args.turns))
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "turns": args.turns,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "turn_latency.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (out / "turn_latency.md").write_text(markdown(results, meta))
    print(markdown(results, meta))


if __name__ == "__main__":
    main()
