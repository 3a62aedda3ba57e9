"""The silence a caller hears after a provider failure, for every cloud adapter and every fault, through the
product's own code: the real bridge, the session, the pipeline engine with its `ReplySupervisor` (the filler),
the brain / STT / TTS chains (deadlines, hedging, fallback), and the FreeSWITCH simulator, in real time.

Each provider is driven through its SDK against the local fake servers of the test suite (which speak the
providers' wire protocols and inject the faults); the deadlines are the shipped defaults (`FallbackSettings`,
`LlmSettings`). One call per run: the greeting, then the caller asks a question while the domain's brain, STT
or TTS (the first of its chain; the local engines follow) fails with the fault. Measured on the audio the
caller hears, from the end of the caller's turn (the moment the failing request starts: the caller's last
word plus `vad.end_silence_ms`): the first audio (the filler when nothing is audible `late_after_s` in), the
answer's first audio (from the call record), and the longest silence heard until the answer has been heard
to its end — the figure a caller feels.

Realtime engines (OpenAI Realtime, ElevenLabs Conversational AI, Gemini Live, against the local servers of
the test suite): a call whose engine fails at the start (HTTP error, 429, refused, no first message) — time
from the call's start to the first audio (the pipeline's greeting) — or mid-call (a reply stalls, the socket
closes as the caller speaks, broken JSON after the caller's turn) — from the moment the fault fired, the
first audio and the longest silence until the answer has been heard.

    .venv/bin/python bench/fallback.py [--runs 1] [--realtime-runs 1] [--only providers|realtime]

Results: bench/results/fallback.json and .md. Target: no silence over 1.5 s after any fault.
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from freeswitch.stream_sim import SPEECH_LEVEL, SimulatedCall, sound_end  # noqa: E402
from secretary.observability import configure_logging  # noqa: E402
from secretary.settings import EngineSettings, Settings  # noqa: E402
from secretary.speech.audio import Pcm  # noqa: E402
from secretary.speech.local_engines import LocalModels  # noqa: E402
from tests.conftest import EXAMPLE_SECRETARIES  # noqa: E402
from tests.support.bridge import ACME, live_bridge  # noqa: E402
from tests.support.fake_convai import AGENT, FakeConvai  # noqa: E402
from tests.support.fake_deepgram import FakeDeepgram  # noqa: E402
from tests.support.fake_elevenlabs import FakeElevenLabs  # noqa: E402
from tests.support.fake_gemini import FakeGemini  # noqa: E402
from tests.support.fake_openai import FakeOpenAi  # noqa: E402
from tests.support.fake_servers import FAULTS, FakeServer, Fault, closed_port_url  # noqa: E402
from tests.support.realtime_server import RealtimeServer  # noqa: E402
from tests.support.realtime_server import Say as RealtimeSay  # noqa: E402
from tests.support.speech import Speech  # noqa: E402
from tests.support.speech_to_speech import LOCATED  # noqa: E402

KEYS = {"BENCH_OPENAI_KEY": "sk-bench", "BENCH_GROQ_KEY": "gsk-bench", "BENCH_DEEPGRAM_KEY": "dg-bench"}
KEYS["BENCH_ELEVENLABS_KEY"] = "el-bench"
KEYS |= {"BENCH_CONVAI_KEY": "el-convai-bench", "BENCH_GEMINI_KEY": "gm-bench"}
UTTERANCE = "Where are you located?"
CASES = [("brain", "openai"), ("brain", "groq"), ("stt", "deepgram"), ("stt", "openai")]
CASES += [("tts", "openai"), ("tts", "elevenlabs")]
TARGET_S = 1.5
REALTIME_ENGINES = ["openai_realtime", "elevenlabs_convai", "gemini_live"]
CONNECT_FAULTS = [Fault.HTTP_500, Fault.HTTP_429, Fault.REFUSED, Fault.HANG]
# what each local server can do: the OpenAI Realtime one refuses, hangs after the caller's turn, disconnects
REALTIME_FAULTS = {
    "openai_realtime": [Fault.NONE, Fault.REFUSED, Fault.HANG, Fault.DISCONNECT],
    "elevenlabs_convai": [Fault.NONE, *FAULTS],
    "gemini_live": [Fault.NONE, *FAULTS],
}
GREETING = "Acme, this is Ava. How can I help?"


def provider_entry(name: str, url: str) -> dict[str, Any]:
    env = {"openai": "BENCH_OPENAI_KEY", "groq": "BENCH_GROQ_KEY", "deepgram": "BENCH_DEEPGRAM_KEY"}
    env["elevenlabs"] = "BENCH_ELEVENLABS_KEY"
    values: dict[str, Any] = {"name": name, "api_key_env": env[name]}
    values["base_url"] = url + "/v1" if name == "openai" else url
    if name in ("openai", "groq"):
        values["model"] = "fake-model"
    if name == "elevenlabs":
        values["voice"] = "fakevoice01"
    return values


def secretaries(folder: Path, providers: dict[str, Any]) -> Path:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    acme = document["secretaries"][0] | {"greeting": GREETING, "providers": providers, "playback_mode": "module"}
    path = folder / "secretaries.yaml"
    path.write_text(yaml.safe_dump({"secretaries": [acme]}))
    return path


def bench_settings(work: Path, data_dir: Path, **overrides: Any) -> Settings:
    """`live_bridge` passes the secretaries file (given to it as `secretaries_file=`) among `overrides`."""
    values: dict[str, Any] = {"database_url": None, "redis_url": None, "config_cache_s": 0}
    values |= {"data_dir": data_dir, "spool": {"dir": work / "spool"}}
    return Settings(**(values | overrides))


def _quiet_gaps(pcm: Pcm, start_ms: int) -> list[tuple[int, int]]:
    """(start, end) media ms of every silence between two sounds after `start_ms` (20 ms frames)."""
    frame = 2 * pcm.sample_rate // 50
    samples = np.abs(np.frombuffer(pcm.data[: len(pcm.data) - len(pcm.data) % frame], dtype="<i2"))
    loud = (samples.reshape(-1, frame // 2) > SPEECH_LEVEL).any(axis=1)
    gaps, quiet_from = [], None
    for index in range(start_ms // 20, len(loud)):
        if loud[index]:
            if quiet_from is not None:
                gaps.append((quiet_from * 20, index * 20))
            quiet_from = None
        elif quiet_from is None:
            quiet_from = index
    return gaps


def longest_silence(heard: Pcm, from_ms: int) -> int:
    """The longest silence (ms) from `from_ms` until the last sound: what the caller waits through."""
    gaps = [(max(a, from_ms), b) for a, b in _quiet_gaps(heard, max(0, from_ms - 20)) if b > from_ms]
    return max((b - a for a, b in gaps), default=0)


def first_sound(heard: Pcm, from_ms: int) -> int:
    """Ms from `from_ms` to the next sound."""
    return next((b for a, b in _quiet_gaps(heard, max(0, from_ms - 20)) if b > from_ms), from_ms) - from_ms


class ProviderBench:
    """One call per run through the real bridge (pipeline engine), the domain's brain, STT or TTS failing."""

    def __init__(self, models: LocalModels, speech: Speech, work: Path) -> None:
        self.models = models
        self.speech = speech
        self.work = work
        self.question = speech.say(UTTERANCE, 8000)
        self.data = work / "provider-data"  # shared: the greeting and the filler are cached (as in production)
        self.calls = 0

    async def case(self, kind: str, provider: str, fault: Fault, server: FakeServer) -> dict[str, float]:
        self.calls += 1
        folder = self.work / f"provider-{self.calls}"
        folder.mkdir(parents=True)
        url = closed_port_url() if fault is Fault.REFUSED else server.url
        path = secretaries(folder, {"realtime": ["pipeline"], kind: [provider_entry(provider, url)]})
        server.fault = fault
        end_silence = Settings().bridge.vad.end_silence_ms
        total: int | None = None
        try:
            async with live_bridge(lambda **o: bench_settings(self.work, self.data, **o), self.models,
                                   with_esl=False, secretaries_file=path) as bridge:  # fmt: skip
                call = await SimulatedCall(bridge.url, ACME).start()
                await call.secretary_speaks()
                await call.secretary_silent()
                asked = call.say(self.question)
                turn_end = asked + (sound_end(self.question) or 0) + end_silence
                await call.secretary_speaks(after_ms=turn_end)
                session = bridge.server.sessions.get(call.call_uuid)
                for _ in range(10):  # the filler, then maybe a silence, then the answer: until it is heard
                    quiet = await call.secretary_silent(quiet_ms=1500)
                    if session is None or session.state.turns:
                        break
                    await call.secretary_speaks(after_ms=quiet)
                heard = call.heard()
                await call.hang_up()
                record = await bridge.call_over(call.call_uuid)
                total = record.turns[0].total_ms if record.turns else None
        finally:
            server.fault = Fault.NONE
        answer = (total or 0) / 1000
        return {
            "first_audio": first_sound(heard, turn_end) / 1000,
            "answer_audio": answer,
            "longest_silence": longest_silence(heard, turn_end) / 1000,
        }


class RealtimeBench:
    """One call per run through the real bridge, its cloud engine failing with the fault."""

    def __init__(self, models: LocalModels, speech: Speech, work: Path) -> None:
        self.models = models
        self.speech = speech
        self.work = work
        self.question = speech.say(UTTERANCE, 8000)
        self.calls = 0

    def server(self, engine: str) -> Any:
        speech = self.speech
        if engine == "elevenlabs_convai":
            return FakeConvai(speech.say, speech.transcribe, KEYS["BENCH_CONVAI_KEY"])
        if engine == "gemini_live":
            return FakeGemini(speech.say, speech.transcribe, KEYS["BENCH_GEMINI_KEY"])
        return RealtimeServer(
            lambda text: speech.say(text, 24000), speech.transcribe, lambda text: RealtimeSay(LOCATED)
        )

    def entry(self, engine: str, url: str) -> dict[str, Any]:
        if engine == "elevenlabs_convai":
            return {"name": engine, "base_url": url, "api_key_env": "BENCH_CONVAI_KEY", "options": {"agent_id": AGENT}}
        if engine == "gemini_live":
            return {"name": engine, "base_url": url, "api_key_env": "BENCH_GEMINI_KEY", "model": "gemini-bench"}
        return {"name": engine, "base_url": url}

    async def case(self, engine: str, fault: Fault) -> dict[str, float]:
        self.calls += 1
        folder = self.work / f"realtime-{self.calls}"
        folder.mkdir(parents=True)
        server = self.server(engine)
        if isinstance(server, RealtimeServer):
            url = await server.start()
        else:
            await server.start()
            server.fault = fault
            url = server.url
        if fault is Fault.REFUSED:
            url = closed_port_url() + ("/v1" if engine == "openai_realtime" else "")
        path = secretaries(folder, {"realtime": [self.entry(engine, url), "pipeline"]})

        def settings(**overrides: Any) -> Settings:
            return bench_settings(self.work, folder / "data", **overrides)

        try:
            async with live_bridge(settings, self.models, with_esl=False, secretaries_file=path) as bridge:
                started = asyncio.get_running_loop().time()
                call = await SimulatedCall(bridge.url, ACME).start()
                greeted = await call.secretary_speaks()
                await call.secretary_silent()
                if isinstance(server, RealtimeServer):
                    server.mode = {Fault.HANG: "hang", Fault.DISCONNECT: "disconnect"}.get(fault, "normal")
                asked = call.say(self.question)
                spoken = asked + (sound_end(self.question) or 0)
                await call.secretary_speaks(after_ms=spoken)
                await call.secretary_silent(quiet_ms=2000)
                heard = call.heard()
                await call.hang_up()
        finally:
            await (server.close() if isinstance(server, RealtimeServer) else server.stop())
        gaps = [(a, b) for a, b in _quiet_gaps(heard, spoken) if b > spoken]
        waited = gaps[0][1] - spoken if gaps else 0
        failed_at = getattr(server, "failed_at", None)
        after, longest = waited, longest_silence(heard, spoken)
        if fault is Fault.STALL:  # the reply broke off: the longest silence inside what followed
            waited = after = longest = max(b - a for a, b in gaps[1:])
        elif failed_at is not None:  # from the moment the fault fired to the next sound
            failed_ms = max(spoken, round((failed_at - started) * 1000))  # silence counts once they stopped
            after, longest = first_sound(heard, failed_ms), longest_silence(heard, failed_ms)
        elif fault in CONNECT_FAULTS:
            after = longest = greeted
        return {"greeting": greeted / 1000, "silence": waited / 1000, "after_failure": after / 1000,
                "longest_silence": longest / 1000}  # fmt: skip


async def run_realtime(runs: int, models: LocalModels, speech: Speech, work: Path) -> list[dict[str, Any]]:
    bench = RealtimeBench(models, speech, work)
    rows: list[dict[str, Any]] = []
    for engine in REALTIME_ENGINES:
        for fault in REALTIME_FAULTS[engine]:
            samples: dict[str, list[float]] = {}
            for _ in range(runs):
                for key, value in (await bench.case(engine, fault)).items():
                    samples.setdefault(key, []).append(value)
            row: dict[str, Any] = {"kind": "realtime", "provider": engine, "fault": fault.value, "runs": runs}
            row |= {key: stat(values) for key, values in samples.items()}
            rows.append(row)
            print(
                f"realtime {engine:18} {fault.value:10} greeting {row['greeting']['p50_ms']:5} ms"
                f"  after the failure {row['after_failure']['p50_ms']:5} ms"
                f"  caller's silence {row['silence']['p50_ms']:5} ms"
                f"  longest silence {row['longest_silence']['p50_ms']:5} ms",
                flush=True,
            )
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def stat(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(values) * 1000), "p95_ms": round(pct(values, 95) * 1000)}


async def run(runs: int, realtime_runs: int, only: str | None) -> dict[str, Any]:
    os.environ.update(KEYS)
    configure_logging("ERROR", "console")
    models = LocalModels(EngineSettings())
    speech = Speech(models)
    models.whisper()
    models.piper()
    work = Path(tempfile.mkdtemp(prefix="bench-fallback-"))
    settings = Settings(database_url=None, redis_url=None, data_dir=work / "data")
    bench = ProviderBench(models, speech, work)
    servers: dict[str, FakeServer] = {
        "openai": FakeOpenAi(speech.say, speech.transcribe),
        "elevenlabs": FakeElevenLabs(speech.say, KEYS["BENCH_ELEVENLABS_KEY"]),
        "deepgram": FakeDeepgram(speech.transcribe, KEYS["BENCH_DEEPGRAM_KEY"]),
    }
    servers["groq"] = servers["openai"]
    for server in {id(s): s for s in servers.values()}.values():
        await server.start()
    rows: list[dict[str, Any]] = []
    try:
        if only != "realtime":  # a first call warms the bridge's models and caches; not measured
            await bench.case("brain", "openai", Fault.NONE, servers["openai"])
        for kind, provider in CASES if only != "realtime" else []:
            for fault in [Fault.NONE, *FAULTS]:  # none first: it fills the TTS cache (greeting, filler)
                samples: dict[str, list[float]] = {}
                for _ in range(runs):
                    result = await bench.case(kind, provider, fault, servers[provider])
                    for key, value in result.items():
                        samples.setdefault(key, []).append(value)
                row: dict[str, Any] = {"kind": kind, "provider": provider, "fault": fault.value, "runs": runs}
                row |= {key: stat(values) for key, values in samples.items()}
                rows.append(row)
                p50 = {key: value["p50_ms"] for key, value in row.items() if isinstance(value, dict)}
                print(
                    f"{kind:5} {provider:10} {fault.value:10} first audio {p50['first_audio']:5} ms"
                    f"  answer {p50['answer_audio']:5} ms  longest silence {p50['longest_silence']:5} ms",
                    flush=True,
                )
    finally:
        for server in {id(s): s for s in servers.values()}.values():
            await server.stop()
    realtime = await run_realtime(realtime_runs, models, speech, work) if only != "providers" else []
    fallback = settings.fallback
    return {
        "what": "the silence a caller hears after a provider failure (fake servers on loopback, the real bridge)",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "deadlines": fallback.model_dump() | settings.llm.model_dump(exclude={"api_key", "base_url", "model"}),
        "target_ms": TARGET_S * 1000,
        "rows": rows,
        "realtime_rows": realtime,
        "load_average": list(os.getloadavg()),
    }


def markdown(result: dict[str, Any]) -> str:
    runs = result["rows"][0]["runs"] if result["rows"] else 0
    lines = [
        "# Fallback: the silence a caller hears after a provider failure",
        "",
        f"{result['what']}; p50 / p95 over {runs} calls each, shipped default deadlines. From the end of the",
        "caller's turn: first audio (the filler when nothing is audible `late_after_s` in), the answer's first",
        "audio (the call record's turn time), and the longest silence heard until the answer has been heard.",
        "",
        "| kind | provider | fault | first audio | answer | longest silence | ≤ 1.5 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:

        def cell(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]['p50_ms']} / {row[key]['p95_ms']} ms"

        ok = "yes" if row["longest_silence"]["p95_ms"] <= result["target_ms"] else "**no**"
        lines.append(
            f"| {row['kind']} | {row['provider']} | {row['fault']} | {cell('first_audio')} | "
            f"{cell('answer_audio')} | {cell('longest_silence')} | {ok} |"
        )
    realtime = result.get("realtime_rows") or []
    if realtime:
        lines += [
            "",
            f"## Realtime engines: p50 / p95 over {realtime[0]['runs']} calls each",
            "",
            "Greeting: call start → first audio (a cloud engine failing at the start hands the call to the",
            "pipeline, which greets). After the failure: the moment the fault fired (the socket dropped, the",
            "broken message came; for a hang the end of the caller's turn, when the reply was owed; for a",
            "failure at the start, the call's start) → the next audio: the apology, the filler or the answer;",
            "for a stall, the longest silence after the reply broke off. Caller's silence: from the caller's",
            "last word (it includes the ~0.5 s end-of-turn silence every engine waits for) → the next audio.",
            "Longest silence: from the fault until the answer has been heard.",
            "",
            "| engine | fault | greeting | after the failure | caller's silence | longest silence | ≤ 1.5 s |",
            "|---|---|---|---|---|---|---|",
        ]
        keys = ("greeting", "after_failure", "silence", "longest_silence")
        for row in realtime:
            worst = max(int(row["greeting"]["p95_ms"]), int(row["longest_silence"]["p95_ms"]))
            ok = "yes" if worst <= result["target_ms"] or row["fault"] == "none" else "**no**"
            cells = [f"{row[key]['p50_ms']} / {row[key]['p95_ms']} ms" for key in keys]
            lines.append(f"| {row['provider']} | {row['fault']} | " + " | ".join(cells) + f" | {ok} |")
    load = result.get("load_average")
    lines += ["", f"Machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}."]
    if load:
        lines.append(
            f"Load average at the end of the run: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--realtime-runs", type=int, default=1)
    parser.add_argument("--only", choices=["providers", "realtime"], default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(run(args.runs, args.realtime_runs, args.only))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fallback.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "fallback.md").write_text(markdown(result))
    print(markdown(result))
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
