"""Time from a provider failure to the caller hearing audio again, for every cloud adapter and every fault.

Each adapter is driven through its SDK against the local fake servers of the test suite (which speak the
providers' wire protocols and inject the faults); the deadlines are the shipped defaults (`FallbackSettings`,
`LlmSettings`). What is timed, per kind, from the moment the failing request starts:
  - brain: the turn (`spoken_turn`: brain chain → Piper), until the first audio the caller hears (the
    filler, when nothing is audible `late_after_s` into the turn) and until the first audio of the answer;
  - STT: the whole turn from the end of the caller's utterance: transcription (hedged with Whisper) → front
    desk → Piper, with the same filler rule;
  - TTS: the turn (front desk → the failing TTS chain), with the same filler rule; and, for a two-sentence
    reply, the longest silence the caller hears (playback of what already arrived covers a late chunk; a
    stall or break mid-sentence is the case that shows).
"Next turn" repeats the request once the failed provider is benched: the time with the provider skipped.

Realtime engines (OpenAI Realtime, ElevenLabs Conversational AI, Gemini Live, against the local servers of
the test suite, through the real bridge and the FreeSWITCH simulator, in real time): a call whose engine
fails at the start (HTTP error, 429, refused, no first message) — time from the call's start to the first
audio (the pipeline's greeting) — or mid-call (a reply stalls, the socket closes as the caller speaks,
broken JSON after the caller's turn) — the silence the caller hears: from the end of their question (or
from where a stalled reply broke off) to the next audio (the apology, the filler, or the pipeline's answer).

    .venv/bin/python bench/fallback.py [--runs 5] [--realtime-runs 2] [--only providers|realtime]

Results: bench/results/fallback.json and .md. Target: under 1.5 s for every fault.
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
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from freeswitch.stream_sim import SPEECH_LEVEL, SimulatedCall, sound_end  # noqa: E402
from secretary.conversation.conversation import Conversation  # noqa: E402
from secretary.conversation.spoken_reply import ReplyAudio, spoken_turn  # noqa: E402
from secretary.observability import configure_logging  # noqa: E402
from secretary.providers import ProviderFactory  # noqa: E402
from secretary.settings import EngineSettings, Settings  # noqa: E402
from secretary.speech.audio import Pcm  # noqa: E402
from secretary.speech.cpu_pool import CpuPool  # noqa: E402
from secretary.speech.interfaces import TextToSpeech, Transcript  # noqa: E402
from secretary.speech.local_engines import LocalModels  # noqa: E402
from secretary.speech.tts_cache import TtsCache  # noqa: E402
from secretary.tenants.config import ProviderChains, ProviderSpec, SecretaryConfig  # noqa: E402
from tests.conftest import EXAMPLE_SECRETARIES, acme_config  # noqa: E402
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
TTS_TEXT = "Our office is next to the train station. We are closed on Sunday afternoons."
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


async def heard_already(text: str) -> Transcript:
    """For the brain and TTS cases: the caller's words are known, the clock starts at the brain."""
    return Transcript(text, "given", 0.0)


def provider_spec(name: str, url: str) -> ProviderSpec:
    env = {"openai": "BENCH_OPENAI_KEY", "groq": "BENCH_GROQ_KEY", "deepgram": "BENCH_DEEPGRAM_KEY"}
    env["elevenlabs"] = "BENCH_ELEVENLABS_KEY"
    values: dict[str, Any] = {"name": name, "api_key_env": env[name]}
    values["base_url"] = url + "/v1" if name == "openai" else url
    if name in ("openai", "groq"):
        values["model"] = "fake-model"
    if name == "elevenlabs":
        values["voice"] = "fakevoice01"
    return ProviderSpec.model_validate(values)


def config_for(kind: str, spec: ProviderSpec) -> SecretaryConfig:
    chains = ProviderChains.model_validate({kind: [spec]})
    return acme_config().model_copy(update={"providers": chains})


class Bench:
    def __init__(self, settings: Settings, models: LocalModels, speech: Speech, cache_dir: Path) -> None:
        self.settings = settings
        self.models = models
        self.speech = speech
        self.cache_dir = cache_dir
        self.utterance = speech.say(UTTERANCE, 8000)

    async def measure(self, kind: str, config: SecretaryConfig, factory: ProviderFactory) -> dict[str, float]:
        """Seconds to the first audio (filler allowed) and to the answer's first audio."""
        loop = asyncio.get_running_loop()
        tts = factory.tts(config)
        cache = TtsCache(self.cache_dir, 16000)
        filler_text = self.settings.fallback.filler_text
        await cache.held(factory.tts(acme_config()), filler_text)  # ready before the call, in Piper's voice

        def filler() -> Awaitable[Pcm]:
            return cache.held(factory.tts(acme_config()), filler_text)

        start = loop.time()
        stt = factory.stt(config)
        hear = stt.transcribe(self.utterance, "en") if kind == "stt" else heard_already(UTTERANCE)
        first_audio = answer_audio = None
        conversation = Conversation(config, factory.brain(config))
        late = self.settings.fallback.late_after_s
        async for item in spoken_turn(hear, conversation, tts, filler=filler, late_after_s=late):
            if isinstance(item, ReplyAudio):
                now = loop.time() - start
                first_audio = now if first_audio is None else first_audio
                if item.sentence is not None and answer_audio is None:
                    answer_audio = now
        assert first_audio is not None and answer_audio is not None
        return {"first_audio": first_audio, "answer_audio": answer_audio}

    async def longest_silence(self, tts: TextToSpeech) -> float:
        """The longest silence the caller hears while a two-sentence reply streams: playback starts with the
        first chunk and plays each chunk for its duration, so audio that arrived early covers a late chunk."""
        loop = asyncio.get_running_loop()
        played_until: float | None = None
        longest = 0.0
        async for pcm in tts.stream(TTS_TEXT):
            now = loop.time()
            if played_until is not None:
                longest = max(longest, now - played_until)
            played_until = max(played_until or now, now) + pcm.duration_s
        return longest

    async def case(self, kind: str, provider: str, fault: Fault, server: FakeServer) -> dict[str, float]:
        """The failing turn and the next one (provider benched) on one factory; for TTS, the two-sentence
        reply on a fresh factory (so the failure happens mid-reply, not before it)."""
        server.fault = fault
        url = closed_port_url() if fault is Fault.REFUSED else server.url
        config = config_for(kind, provider_spec(provider, url))
        pool = CpuPool(self.settings.engines.workers)
        try:
            factory = ProviderFactory(self.settings, self.models, pool)
            try:
                failed = await self.measure(kind, config, factory)
                benched = await self.measure(kind, config, factory)
            finally:
                await factory.close()
            gap = 0.0
            if kind == "tts":
                factory = ProviderFactory(self.settings, self.models, pool)
                try:
                    gap = await self.longest_silence(factory.tts(config))
                finally:
                    await factory.close()
        finally:
            pool.close()
            server.fault = Fault.NONE
        result = {"failed_" + k: v for k, v in failed.items()} | {"next_" + k: v for k, v in benched.items()}
        return result | {"failed_gap": gap}


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
        document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
        acme = document["secretaries"][0] | {"greeting": GREETING}
        acme["providers"] = {"realtime": [self.entry(engine, url), "pipeline"]}
        (folder / "secretaries.yaml").write_text(yaml.safe_dump({"secretaries": [acme]}))

        def settings(**overrides: Any) -> Settings:
            values: dict[str, Any] = {"database_url": None, "redis_url": None, "config_cache_s": 0}
            values |= {"secretaries_file": folder / "secretaries.yaml", "data_dir": folder / "data"}
            values |= {"spool": {"dir": self.work / "spool"}}
            return Settings(**(values | overrides))

        try:
            async with live_bridge(settings, self.models, with_esl=False) as bridge:
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
        after = waited
        if fault is Fault.STALL:  # the reply broke off: the longest silence inside what followed
            waited = after = max(b - a for a, b in gaps[1:])
        elif failed_at is not None:  # from the moment the fault fired to the next sound
            failed_ms = max(spoken, round((failed_at - started) * 1000))  # silence counts once they stopped
            after = next(b for a, b in _quiet_gaps(heard, failed_ms) if b > failed_ms) - failed_ms
        elif fault in CONNECT_FAULTS:
            after = greeted
        return {"greeting": greeted / 1000, "silence": waited / 1000, "after_failure": after / 1000}


async def run_realtime(runs: int, models: LocalModels, speech: Speech, work: Path) -> list[dict[str, Any]]:
    bench = RealtimeBench(models, speech, work)
    rows: list[dict[str, Any]] = []
    for engine in REALTIME_ENGINES:
        for fault in REALTIME_FAULTS[engine]:
            samples: dict[str, list[float]] = {}
            for _ in range(runs):
                for key, value in (await bench.case(engine, fault)).items():
                    samples.setdefault(key, []).append(value)
            row = {"kind": "realtime", "provider": engine, "fault": fault.value, "runs": runs}
            row |= {key: stat(values) for key, values in samples.items()}
            rows.append(row)
            print(
                f"realtime {engine:18} {fault.value:10} greeting {row['greeting']['p50_ms']:5} ms"
                f"  after the failure {row['after_failure']['p50_ms']:5} ms"
                f"  caller's silence {row['silence']['p50_ms']:5} ms",
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
    settings = Settings(database_url=None, redis_url=None, data_dir=work / "data", spool={"dir": work / "spool"})
    bench = Bench(settings, models, speech, work / "cache")
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
        for kind, provider in CASES if only != "realtime" else []:
            for fault in [Fault.NONE, *FAULTS]:
                samples: dict[str, list[float]] = {}
                for _ in range(runs):
                    result = await bench.case(kind, provider, fault, servers[provider])
                    for key, value in result.items():
                        samples.setdefault(key, []).append(value)
                row = {"kind": kind, "provider": provider, "fault": fault.value, "runs": runs}
                row |= {key: stat(values) for key, values in samples.items()}
                rows.append(row)
                p50 = {key: value["p50_ms"] for key, value in row.items() if isinstance(value, dict)}
                print(
                    f"{kind:5} {provider:10} {fault.value:10} first audio {p50['failed_first_audio']:5} ms"
                    f"  answer {p50['failed_answer_audio']:5} ms  gap {p50['failed_gap']:5} ms"
                    f"  next turn {p50['next_first_audio']:5} ms",
                    flush=True,
                )
    finally:
        for server in {id(s): s for s in servers.values()}.values():
            await server.stop()
    realtime = await run_realtime(realtime_runs, models, speech, work) if only != "providers" else []
    fallback = settings.fallback
    return {
        "what": "time from a provider failure to the caller hearing audio again (fake servers on loopback)",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "deadlines": fallback.model_dump() | settings.llm.model_dump(exclude={"api_key", "base_url", "model"}),
        "target_ms": TARGET_S * 1000,
        "rows": rows,
        "realtime_rows": realtime,
        "load_average": list(os.getloadavg()),
    }


def worst_silence(row: dict[str, Any]) -> int:
    """What the caller waits through: first audio, or the mid-sentence gap when that is longer."""
    return max(int(row["failed_first_audio"]["p95_ms"]), int(row["failed_gap"]["p95_ms"]))


def markdown(result: dict[str, Any]) -> str:
    runs = result["rows"][0]["runs"] if result["rows"] else 0
    lines = [
        "# Fallback: time to audio after a provider failure",
        "",
        f"{result['what']}; p50 / p95 over {runs} runs each, shipped default deadlines.",
        "First audio may be the filler (nothing audible 1 s into the turn); answer = first audio of the reply",
        "itself; longest gap = the longest silence heard while a two-sentence reply plays (TTS rows). Next turn:",
        "the same request again, with the failed provider benched (skipped).",
        "",
        "| kind | provider | fault | first audio | answer | longest gap | next turn | under 1.5 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:

        def cell(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]['p50_ms']} / {row[key]['p95_ms']} ms"

        ok = "yes" if worst_silence(row) < result["target_ms"] else "**no**"  # p95 of both
        gap = cell("failed_gap") if row["kind"] == "tts" else "—"
        lines.append(
            f"| {row['kind']} | {row['provider']} | {row['fault']} | {cell('failed_first_audio')} | "
            f"{cell('failed_answer_audio')} | {gap} | {cell('next_first_audio')} | {ok} |"
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
            "",
            "| engine | fault | greeting | after the failure | caller's silence | under 1.5 s |",
            "|---|---|---|---|---|---|",
        ]
        for row in realtime:
            worst = max(int(row["greeting"]["p95_ms"]), int(row["after_failure"]["p95_ms"]))
            ok = "yes" if worst < result["target_ms"] or row["fault"] == "none" else "**no**"
            cells = [
                f"{row[key]['p50_ms']} / {row[key]['p95_ms']} ms" for key in ("greeting", "after_failure", "silence")
            ]
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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--realtime-runs", type=int, default=2)
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
