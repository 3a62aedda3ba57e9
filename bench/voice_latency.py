"""Voice latency of the offline realtime pipeline: from the end of the caller's speech to the first audio of
the answer, as the caller hears it (the FreeSWITCH simulator's timeline), and how that time splits.

A real bridge (pipeline engine: Silero VAD, Whisper tiny.en, the front desk, Piper) runs in this process;
simulated calls ask questions spoken by Piper, in real time. Per turn the call record gives the bridge's own
split: STT (what is left of it once the turn has ended: it starts on a guess after `early_stt_ms` of
silence), brain (to the first sentence), TTS (to its first audio). The rest is the VAD hangover (the
silence that must pass before the turn counts as over) plus the way to the caller's ear.

    python bench/voice_latency.py                 # 2 calls x 6 questions
    python bench/voice_latency.py --calls 1 --no-early-stt

Results: bench/results/voice_latency.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.server import BridgeServer  # noqa: E402
from freeswitch.esl import EslClient  # noqa: E402
from freeswitch.esl_server_sim import EslServerSimulator  # noqa: E402
from freeswitch.stream_sim import SimulatedCall, sound_end  # noqa: E402
from secretary.observability import configure_logging  # noqa: E402
from secretary.runtime import Runtime  # noqa: E402
from secretary.settings import Settings  # noqa: E402
from secretary.speech.audio import Pcm  # noqa: E402

ACME = "d0000000-0001-4000-8000-000000000001"
QUESTIONS = [
    "Where are you located?",
    "Do you have parking?",
    "What are your opening hours?",
    "When do you close on Friday?",  # ("Hello, is anybody there?" now reads as asking for a person: a transfer)
    "Are you open on Saturday?",  # ("Thank you very much." now ends the call: the goodbye intent, by meaning)
    "Can you tell me your address please?",
]
RESULTS = ROOT / "bench" / "results"


def say(runtime: Runtime, text: str, rate: int) -> Pcm:
    from piper import SynthesisConfig

    voice = runtime.models.piper()
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    audio = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, syn_config=steady))
    return Pcm(audio, voice.config.sample_rate).resampled(rate)


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


async def run(args: argparse.Namespace) -> dict[str, object]:
    configure_logging("ERROR", "console")
    folder = Path(tempfile.mkdtemp(prefix="voice-latency-"))
    switch = EslServerSimulator()
    esl_port = await switch.start()
    settings = Settings(
        database_url=None,
        redis_url=None,
        secretaries_file=ROOT / "config" / "secretaries.example.yaml",
        data_dir=folder / "data",
        spool={"dir": folder / "spool"},
        bridge={"esl": {"port": esl_port}, "vad": {"early_stt_ms": args.early_stt_ms}, "caller_silence_s": 60},
    )
    runtime = Runtime.create(settings)
    await runtime.warm_up()
    questions = {q: say(runtime, q, args.rate) for q in QUESTIONS}
    esl = EslClient(settings.bridge.esl)
    esl.start()
    await esl.wait_connected(5)
    server = await BridgeServer(runtime, esl=esl).start(host="127.0.0.1", port=0)
    samples: list[dict[str, float]] = []
    try:
        for _ in range(args.calls):
            call = await SimulatedCall(f"ws://127.0.0.1:{server.port}", ACME, sample_rate=args.rate).start()
            await call.secretary_speaks()
            await call.secretary_silent()
            turns: list[tuple[str, float, float]] = []
            for text, pcm in questions.items():
                said_at = call.say(pcm)
                speech_end = said_at + (sound_end(pcm) or 0)
                answer_at = await call.secretary_speaks(after_ms=speech_end)
                turns.append((text, speech_end, answer_at))
                await call.secretary_silent()
            call_uuid = call.call_uuid
            session = server.sessions.get(call_uuid)
            await call.hang_up()
            if session is not None:
                await session.finished.wait()
            record = await runtime.call_records.get(uuid.UUID(ACME), uuid.UUID(call_uuid))
            assert record is not None
            for (text, speech_end, answer_at), turn in zip(turns, record.turns, strict=True):
                latency = answer_at - speech_end
                samples.append(
                    {
                        "question": text,
                        "latency_ms": latency,
                        "stt_ms": float(turn.stt_ms or 0),
                        "brain_ms": float(turn.brain_ms or 0),
                        "tts_ms": float(turn.tts_ms or 0),
                        "bridge_ms": float(turn.total_ms or 0),
                        "hangover_and_delivery_ms": latency - float(turn.total_ms or 0),
                    }
                )
                print(json.dumps(samples[-1]), flush=True)
    finally:
        await server.close()
        await runtime.close()
        await switch.close()
    latencies = [s["latency_ms"] for s in samples]

    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 1)

    return {
        "benchmark": "voice_latency",
        "engine": "pipeline (Silero VAD, Whisper tiny.en int8, front desk, Piper)",
        "sample_rate": args.rate,
        "end_silence_ms": settings.bridge.vad.end_silence_ms,
        "early_stt_ms": args.early_stt_ms,
        "turns": len(samples),
        "latency_median_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "split_median_ms": {
            "vad_hangover_and_delivery": median("hangover_and_delivery_ms"),
            "stt_after_turn_end": median("stt_ms"),
            "brain_to_first_sentence": median("brain_ms"),
            "tts_to_first_audio": median("tts_ms"),
        },
        "target_ms": 1200,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
        "samples": samples,
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write(report: dict[str, object]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if report["early_stt_ms"] else "_no_early_stt"
    (RESULTS / f"voice_latency{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    split = report["split_median_ms"]
    assert isinstance(split, dict)
    lines = [
        "# voice_latency: end of caller speech → first reply audio (offline pipeline)",
        "",
        f"{report['turns']} turns at {report['sample_rate']} Hz; end of turn after {report['end_silence_ms']} ms"
        f" of silence; early STT after {report['early_stt_ms']} ms. Load average at the end:"
        f" {report['machine']['load_avg_at_end']}.",  # type: ignore[index]
        "",
        f"- median **{report['latency_median_ms']} ms**, p95 **{report['latency_p95_ms']} ms** (target 1200 ms)",
        "",
        "| where the time goes (medians) | ms |",
        "|---|---:|",
        f"| VAD hangover + delivery to the caller | {split['vad_hangover_and_delivery']} |",
        f"| STT left after the turn ended | {split['stt_after_turn_end']} |",
        f"| brain to the first sentence | {split['brain_to_first_sentence']} |",
        f"| TTS to the first audio | {split['tts_to_first_audio']} |",
    ]
    (RESULTS / f"voice_latency{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--rate", type=int, choices=(8000, 16000), default=8000)
    parser.add_argument("--no-early-stt", dest="early_stt_ms", action="store_const", const=0, default=200)
    write(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
