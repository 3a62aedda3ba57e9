"""The bridge's own cost per call: N concurrent simulated mod_audio_stream calls against the echo engine.

The bridge runs in a child process pinned to one core; the callers run here, pinned to the other. Each call
sends 20 ms L16 frames at 8 kHz on an absolute clock; the echo engine plays every 100 ms of audio back as one
`streamAudio` message. Each frame carries its sequence number and the moment it was written to the socket
(CLOCK_MONOTONIC, which both processes share). Two latencies:

- **frame handling** (the target figure): from the caller writing a frame to the bridge's engine receiving
  it — loopback, the bridge's event loop queueing, the WebSocket parser, codec checks and the session — read
  inside the bridge, so the load generator's own lateness doesn't count.
- **round trip**: from writing the frame that completed a chunk to the caller reading that chunk back
  (adds the playback timeline, JSON/base64, the way back, and the caller process's own event-loop lag).

CPU per call is the bridge process's CPU time over the measuring window, divided by the calls.

    python bench/bridge_load.py                      # 50, 200, 500 calls, then the largest N with p99 < 5 ms
    python bench/bridge_load.py --calls 100 --seconds 5 --no-search

Results: bench/results/bridge_load.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from array import array
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACME = "d0000000-0001-4000-8000-000000000001"
RATE = 8000
FRAME_S = 0.02
FRAME_BYTES = 2 * int(RATE * FRAME_S)
TARGET_P99_MS = 5.0
RESULTS = ROOT / "bench" / "results"


# -- the bridge, in its own process -------------------------------------------------------------------------


def serve(core: int | None) -> None:
    """The bridge child: serves calls with a timed echo engine; on stdin `start` it begins recording frame
    handling latencies, on `stop` it prints their percentiles as one JSON line; EOF ends it."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    from secretary.observability import configure_logging

    configure_logging("ERROR", "console")

    async def run() -> None:
        from bridge.engines.echo import EchoEngine
        from bridge.engines.registry import EngineRegistry
        from bridge.server import BridgeServer
        from secretary.runtime import Runtime
        from secretary.settings import Settings
        from voiceai.serve import freeze_startup_heap

        latencies = array("d")
        recording = [False]
        collections: list[tuple[int, float]] = []  # (generation, seconds) of each cyclic GC while recording
        gc_started = [0.0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if not recording[0]:
                return
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                collections.append((info["generation"], time.perf_counter() - gc_started[0]))

        gc.callbacks.append(on_gc)

        class TimedEcho(EchoEngine):
            def feed(self, pcm: bytes) -> None:
                if recording[0] and len(pcm) >= STAMP.size:
                    _seq, sent = STAMP.unpack_from(pcm)
                    latencies.append(time.monotonic() - sent)
                super().feed(pcm)

        engines = EngineRegistry()
        engines.register("timed_echo", lambda request: TimedEcho(request.sample_rate))

        folder = Path(tempfile.mkdtemp(prefix="bridge-load-"))
        settings = Settings(
            database_url=None,
            redis_url=None,
            secretaries_file=ROOT / "config" / "secretaries.example.yaml",
            data_dir=folder / "data",
            spool={"dir": folder / "spool"},
            bridge={"engine": "timed_echo", "esl": {"enabled": False}, "caller_silence_s": 3600},
        )
        runtime = Runtime.create(settings)
        server = await BridgeServer(runtime, engines=engines).start(host="127.0.0.1", port=0)
        freeze_startup_heap()  # as `voiceai serve` does once it has started
        print(server.port, flush=True)
        loop = asyncio.get_running_loop()
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "start":
                del latencies[:]
                collections.clear()
                recording[0] = True
            elif command == "stop":
                recording[0] = False
                ms = np.frombuffer(latencies, dtype=np.float64) * 1000
                stats = {"n": int(ms.size)}
                if ms.size:
                    stats |= {
                        "p50": float(np.percentile(ms, 50)),
                        "p99": float(np.percentile(ms, 99)),
                        "max": float(ms.max()),
                    }
                for generation in range(3):
                    pauses = [s * 1000 for g, s in collections if g == generation]
                    stats[f"gc{generation}"] = {"n": len(pauses), "max_ms": round(max(pauses, default=0.0), 2)}
                print(json.dumps(stats), flush=True)
        await server.close()
        await runtime.close()

    asyncio.run(run())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the callers ---------------------------------------------------------------------------------------------


class Caller:
    """One call's receiving side; its frames are written by the shared `Ticker`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: object = None
        self.seq = 0
        self.frame = bytearray(FRAME_HEADER + bytes(FRAME_BYTES))  # the payload starts with `STAMP`
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []
        self.measuring = False
        self.failed: str | None = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, max_size=None, compression=None)
        await self.ws.send(json.dumps({"caller_id_number": "1000", "sample_rate": RATE}))  # type: ignore[attr-defined]

    def send_frame(self, now: float) -> None:
        """Writes one masked binary frame straight to the socket (mask 0: the payload goes as it is). The
        websockets library would cost the callers more CPU than the bridge spends, and cap the load."""
        STAMP.pack_into(self.frame, len(FRAME_HEADER), self.seq, time.monotonic())
        self.sent_at[self.seq] = now
        self.seq += 1
        self.ws.transport.write(bytes(self.frame))  # type: ignore[attr-defined]

    async def receive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for text in self.ws:  # type: ignore[attr-defined]
                if not isinstance(text, str) or '"streamAudio"' not in text:
                    continue
                now = loop.time()
                start = text.index('"audioData":"') + 13
                pcm = base64.b64decode(text[start : text.index('"', start)])
                last = (len(pcm) // FRAME_BYTES - 1) * FRAME_BYTES
                seq, _sent = STAMP.unpack_from(pcm, last)
                sent = self.sent_at.pop(seq, None)
                for old in [s for s in self.sent_at if s < seq]:
                    del self.sent_at[old]
                if sent is not None and self.measuring:
                    self.latencies.append(now - sent)
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"


FRAME_HEADER = b"\x82\xfe" + struct.pack(">H", FRAME_BYTES) + b"\x00\x00\x00\x00"
STAMP = struct.Struct("<Id")  # sequence number, CLOCK_MONOTONIC when written to the socket
PHASES = 10  # calls are spread over 10 phases 2 ms apart, as independent FreeSWITCH media timers would be


async def tick(callers: list[Caller], stop: asyncio.Event, late: list[float], measuring: list[bool]) -> None:
    loop = asyncio.get_running_loop()
    groups = [callers[i::PHASES] for i in range(PHASES)]
    start = loop.time()
    step = 0
    while not stop.is_set():
        due = start + step * FRAME_S / PHASES
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif measuring[0]:
            late.append(-delay)
        now = loop.time()
        for caller in groups[step % PHASES]:
            if caller.failed is None:
                caller.send_frame(now)
        step += 1


async def measure(child: subprocess.Popen[str], port: int, calls: int, seconds: float) -> dict[str, float]:
    pid = child.pid
    assert child.stdin is not None and child.stdout is not None
    stop = asyncio.Event()
    callers = [Caller(f"ws://127.0.0.1:{port}/stream/{ACME}/{uuid.uuid4()}") for _ in range(calls)]
    for batch in range(0, calls, 50):
        await asyncio.gather(*(c.open() for c in callers[batch : batch + 50]))
    receivers = [asyncio.create_task(c.receive()) for c in callers]
    late: list[float] = []
    measuring = [False]
    ticker = asyncio.create_task(tick(callers, stop, late, measuring))
    await asyncio.sleep(2.0)  # warm up
    for caller in callers:
        caller.measuring = True
    measuring[0] = True
    child.stdin.write("start\n")
    child.stdin.flush()
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    own_before = cpu_seconds(os.getpid())
    await asyncio.sleep(seconds)
    cpu = cpu_seconds(pid) - cpu_before
    wall = time.perf_counter() - wall_before
    own = cpu_seconds(os.getpid()) - own_before
    child.stdin.write("stop\n")
    child.stdin.flush()
    handling = json.loads(await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline))
    for caller in callers:
        caller.measuring = False
    measuring[0] = False
    stop.set()
    await ticker
    for caller in callers:
        with contextlib.suppress(Exception):
            await caller.ws.close()  # type: ignore[attr-defined]
    await asyncio.wait(receivers, timeout=10)
    latencies = np.array([x for c in callers for x in c.latencies]) * 1000
    late_ms = np.array(late) * 1000
    failed = [c.failed for c in callers if c.failed]
    expected = calls * seconds / 0.1
    nan = float("nan")
    return {
        "calls": calls,
        "frames_measured": handling["n"],
        "frames_expected": int(calls * seconds / FRAME_S),
        "p50_ms": round(handling.get("p50", nan), 2),
        "p99_ms": round(handling.get("p99", nan), 2),
        "max_ms": round(handling.get("max", nan), 2),
        "chunks_measured": int(latencies.size),
        "chunks_expected": int(expected),
        "round_trip_p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies.size else nan,
        "round_trip_p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies.size else nan,
        "bridge_cpu_percent": round(100 * cpu / wall, 1),
        "cpu_percent_per_call": round(100 * cpu / wall / calls, 3),
        "callers_cpu_percent": round(100 * own / wall, 1),
        "caller_late_ticks": int(late_ms.size),
        "caller_late_p99_ms": round(float(np.percentile(late_ms, 99)), 2) if late_ms.size else 0.0,
        "failed_calls": len(failed),
        "gc_pauses": {f"gen{g}": handling[f"gc{g}"] for g in range(3)},
    }


def passes(result: dict[str, float]) -> bool:
    complete = (
        result["frames_measured"] >= 0.9 * result["frames_expected"]
        and result["chunks_measured"] >= 0.9 * result["chunks_expected"]
    )
    return bool(result["p99_ms"] < TARGET_P99_MS and complete and not result["failed_calls"])


def start_bridge() -> tuple[subprocess.Popen[str], int | None]:
    cores = sorted(os.sched_getaffinity(0))
    bridge_core = cores[0] if len(cores) > 1 else None
    if len(cores) > 1:
        os.sched_setaffinity(0, set(cores[1:]))
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", *(["--core", str(bridge_core)] if bridge_core is not None else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return child, bridge_core


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    load_at_start = os.getloadavg()
    child, bridge_core = start_bridge()
    assert child.stdout is not None and child.stdin is not None
    port = int(child.stdout.readline())
    gc.collect()
    gc.freeze()  # the callers' process too: a full collection here would make its frames late
    results: list[dict[str, float]] = []
    try:
        for calls in args.calls:
            result = await measure(child, port, calls, args.seconds)
            results.append(result)
            print(json.dumps(result), flush=True)
        if args.search:
            good = max((r["calls"] for r in results if passes(r)), default=0)
            bad = min((r["calls"] for r in results if not passes(r) and r["calls"] > good), default=None)
            if bad is None:
                bad = good * 2 if good else 50
                result = await measure(child, port, int(bad), args.seconds)
                results.append(result)
                print(json.dumps(result), flush=True)
                if passes(result):
                    good, bad = bad, None
            while bad is not None and bad - good > args.step:
                middle = int((good + bad) // 2 // args.step * args.step) or args.step
                if middle in (good, bad):
                    break
                result = await measure(child, port, middle, args.seconds)
                results.append(result)
                print(json.dumps(result), flush=True)
                good, bad = (middle, bad) if passes(result) else (good, middle)
    finally:
        child.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(20)
        if child.poll() is None:
            child.kill()
    largest = max((r["calls"] for r in results if passes(r)), default=0)
    return {
        "benchmark": "bridge_load",
        "engine": "echo",
        "sample_rate": RATE,
        "frame_ms": 20,
        "chunk_ms": 100,
        "seconds_measured_per_step": args.seconds,
        "bridge_pinned_to_core": bridge_core,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_start": load_at_start},
        "results": sorted(results, key=lambda r: r["calls"]),
        "largest_calls_with_p99_under_5ms": largest,
        "target_calls": 300,
    }


def write(report: dict[str, object]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bridge_load.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# bridge_load: the bridge's own cost (echo engine, 8 kHz, 20 ms frames, one core)",
        "",
        f"Load average when it started: {report['machine']['load_avg_at_start']}"  # type: ignore[index]
        " (other work on the machine inflates every figure).",
        "",
        "| calls | frame handling p50 ms | p99 ms | max ms | round trip p50 ms | p99 ms |"
        " bridge CPU % of a core | CPU % per call | frames measured | full GCs (longest ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {r['calls']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} | {r['round_trip_p50_ms']} |"
            f" {r['round_trip_p99_ms']} | {r['bridge_cpu_percent']} | {r['cpu_percent_per_call']} |"
            f" {r['frames_measured']}/{r['frames_expected']} |"
            f" {r['gc_pauses']['gen2']['n']} ({r['gc_pauses']['gen2']['max_ms']}) |"
        )
    lines += ["", f"Largest N with p99 under 5 ms: **{report['largest_calls_with_p99_under_5ms']}** (target 300)."]
    (RESULTS / "bridge_load.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=lambda s: [int(x) for x in s.split(",")], default=[50, 200, 500])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per step")
    parser.add_argument("--no-search", dest="search", action="store_false", help="skip the search for the largest N")
    parser.add_argument("--step", type=int, default=50, help="resolution of the search")
    args = parser.parse_args()
    if args.serve:
        serve(args.core)
        return
    write(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
