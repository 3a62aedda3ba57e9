"""`voiceai eval`: whole calls, as data, through the real v1 API — how often the secretary does the right thing.

A scenario file (YAML) holds one invented business: its secretary (a `SecretaryConfig`), its documents, and
calls — each a list of caller turns (words Piper speaks, a WAV, keys, or silence) with what must happen: the
action (transfer and where, take a message, hang up, continue), words the reply must say and words it must
never say. The caller's words are spoken by Piper and degraded the way a phone line degrades them (8 kHz,
G.711 µ-law, noise at a set signal-to-noise ratio), then posted as WAVs to an ivr_service started in this
process on loopback — the same HTTP, STT, brain and TTS a FreeSWITCH call gets. Nothing is tuned per
scenario; the expectations are what a receptionist would do.

The brain is the secretary's own chain, or with `--brain front_desk` the offline front desk alone, or with
`--llm-base-url` an OpenAI-compatible server (Ollama, llama.cpp) in front of the front desk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import numpy as np
import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from secretary.settings import Settings
from secretary.speech.audio import Pcm, parse_wav, ulaw_decode, ulaw_encode, wav_bytes
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig

PHONE_RATE = 8000
ActionName = Literal["continue", "transfer", "hangup", "take_message"]


class Expect(BaseModel):
    """What the secretary's answer to one turn must be (every field optional: only what is given is checked)."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName | None = None
    destination: str | None = None  # the extension a transfer goes to
    say: list[str] = Field(default_factory=list)  # each must be in the reply (case-insensitive)
    say_any: list[str] = Field(default_factory=list)  # at least one must be in the reply
    never: list[str] = Field(default_factory=list)  # none may be in the reply


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    say: str | None = None  # the caller's words, spoken by Piper
    wav: Path | None = None  # or a recording (relative to the scenario file)
    keys: str | None = None  # or DTMF
    silence: float | None = None  # or this many seconds of line noise
    # or the caller answers what the secretary asks — the reply whose key the question contains ("name":
    # "Sam Turner.") — until the secretary's action is `until` (whatever questions a brain asks, in any order)
    answers: dict[str, str] | None = None
    until: ActionName | None = None
    expect: Expect = Field(default_factory=Expect)
    optional: bool = False  # said only if the call is still on (e.g. "yes" to a confirmation it may skip)

    @model_validator(mode="after")
    def _one_input(self) -> Turn:
        given = [x for x in (self.say, self.wav, self.keys, self.silence, self.answers) if x is not None]
        if len(given) != 1:
            raise ValueError("a turn is exactly one of say, wav, keys, silence or answers")
        if (self.answers is None) != (self.until is None):
            raise ValueError("answers and until go together")
        return self

    def describe(self) -> str:
        if self.answers is not None:
            return f"[answers until {self.until}]"
        if self.say is not None:
            return self.say
        if self.keys is not None:
            return f"[keys {self.keys}]"
        if self.silence is not None:
            return f"[{self.silence:g} s of silence]"
        return f"[{self.wav}]"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    caller_id: str = "+15550100"
    greeting: Expect = Field(default_factory=Expect)  # checked against the greeting
    turns: list[Turn] = Field(min_length=1)
    ends: Expect | None = None  # checked against the call's last answer (its action, where it went)
    message_for: str | None = None  # the call leaves one message, saved for this directory entry


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    text: str


class Business(BaseModel):
    """One scenario file: a tenant, its documents, its calls."""

    model_config = ConfigDict(extra="forbid")

    secretary: dict[str, Any]
    documents: list[Document] = Field(default_factory=list)
    scenarios: list[Scenario] = Field(min_length=1)

    def config(self) -> SecretaryConfig:
        return SecretaryConfig.model_validate(self.secretary)


@dataclass
class TurnResult:
    turn: str
    heard: str
    said: str
    action: str
    destination: str | None
    failures: list[str]


@dataclass
class ScenarioResult:
    business: str
    scenario: str
    turns: list[TurnResult] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(not t.failures for t in self.turns)

    def first_failure(self) -> str:
        if self.error is not None:
            return self.error
        for index, turn in enumerate(self.turns):
            if turn.failures:
                return f"turn {index}: {'; '.join(turn.failures)} (heard {turn.heard!r}, said {turn.said!r})"
        return ""


def check(expect: Expect, said: str, action: str, destination: str | None) -> list[str]:
    """Every way the answer falls short of `expect` (empty: it passed)."""
    failures: list[str] = []
    text = said.lower()
    if expect.action is not None and action != expect.action:
        failures.append(f"action {action}, expected {expect.action}")
    if expect.destination is not None and destination != expect.destination:
        failures.append(f"destination {destination}, expected {expect.destination}")
    failures += [f"did not say {word!r}" for word in expect.say if word.lower() not in text]
    if expect.say_any and not any(word.lower() in text for word in expect.say_any):
        failures.append(f"said none of {expect.say_any}")
    failures += [f"said {word!r}" for word in expect.never if word.lower() in text]
    return failures


def phone_line(pcm: Pcm, snr_db: float, seed: int) -> Pcm:
    """`pcm` as a caller's phone delivers it: 8 kHz, white noise at `snr_db`, G.711 µ-law both ways."""
    narrow = pcm.resampled(PHONE_RATE)
    samples = np.frombuffer(narrow.data, "<i2").astype(np.float64)
    power = float(np.mean(samples**2)) if samples.size else 0.0
    noise = np.random.default_rng(seed).normal(
        0.0, np.sqrt(power / 10 ** (snr_db / 10)) if power else 30.0, samples.size
    )
    noisy = np.clip(samples + noise, -32768, 32767).astype("<i2").tobytes()
    return Pcm(ulaw_decode(ulaw_encode(noisy)), PHONE_RATE)


def line_noise(seconds: float, seed: int) -> Pcm:
    """A silent caller: only the line's hiss."""
    noise = np.random.default_rng(seed).normal(0.0, 30.0, int(seconds * PHONE_RATE))
    return Pcm(np.clip(noise, -32768, 32767).astype("<i2").tobytes(), PHONE_RATE)


class Caller:
    """Speaks the caller's words with the local Piper voice, deterministically (no generator noise)."""

    def __init__(self, models: LocalModels, snr_db: float) -> None:
        self._models = models
        self._snr_db = snr_db

    def speak(self, text: str, seed: int) -> Pcm:
        from piper import SynthesisConfig

        voice = self._models.piper()
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        audio = b"".join(c.audio_int16_bytes for c in voice.synthesize(text, syn_config=config))
        return phone_line(Pcm(audio, voice.config.sample_rate), self._snr_db, seed)


def load_business(path: Path) -> Business:
    return Business.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def with_brain(config: SecretaryConfig, brain: str, llm_base_url: str | None, llm_model: str | None) -> dict[str, Any]:
    """The secretary as the evaluation runs it: its own brain chain, the front desk alone, or an LLM first."""
    document = config.model_dump(mode="json")
    providers = document.setdefault("providers", {})
    if llm_base_url:
        spec = {"name": "openai_compatible", "base_url": llm_base_url, "model": llm_model or "default"}
        providers["brain"] = [spec, "front_desk"]
    elif brain == "front_desk":
        providers["brain"] = ["front_desk"]
    providers["stt"], providers["tts"] = ["whisper"], ["piper"]  # the offline engines: nothing leaves the box
    return document


@asynccontextmanager
async def ivr_service(settings: Settings, models: LocalModels) -> AsyncIterator[tuple[str, Any]]:
    """The real ivr_service app on a loopback port of its own, for the length of the evaluation."""
    from ivr_service.app import create_app
    from secretary.runtime import Runtime

    runtime = Runtime.create(settings, models=models)
    runner = web.AppRunner(create_app(runtime, own_runtime=True))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", runtime
    finally:
        await runner.cleanup()


async def _post(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with http.post(url, **kwargs) as response:
        body = await response.text()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} from {url.rsplit('/api/v1', 1)[-1]}: {body[:300]}")
        result: dict[str, Any] = json.loads(body)
        return result


@dataclass
class _CallSession:
    """One evaluated call's requests to the v1 API."""

    http: aiohttp.ClientSession
    url: str
    call_uuid: str
    domain: str
    caller: Caller
    base: Path

    async def turn(self, turn: Turn, seed: int) -> dict[str, Any]:
        calls = f"{self.url}/api/v1/calls/{self.call_uuid}"
        if turn.keys is not None:
            return await _post(self.http, f"{calls}/dtmf?domain_uuid={self.domain}", json={"digits": turn.keys})
        if turn.say is not None:
            audio = await asyncio.to_thread(self.caller.speak, turn.say, seed)
        elif turn.silence is not None:
            audio = line_noise(turn.silence, seed)
        else:
            assert turn.wav is not None
            audio = phone_line(parse_wav((self.base / turn.wav).read_bytes()), 60.0, seed)
        return await _post(
            self.http,
            f"{calls}/turns?domain_uuid={self.domain}",
            data=wav_bytes(audio),
            headers={"Content-Type": "audio/wav"},
        )


MAX_ANSWERS = 6


async def _answer_until(session: _CallSession, turn: Turn, last: dict[str, Any], seed: int) -> dict[str, Any]:
    """Answers the secretary's questions from `turn.answers` until its action is `turn.until`."""
    assert turn.answers is not None
    for attempt in range(MAX_ANSWERS):
        if last["action"]["type"] == turn.until or last["action"]["type"] in ("transfer", "hangup"):
            return last
        asked = (last["say"]["text"] if last.get("say") else "").lower()
        reply = next((text for key, text in turn.answers.items() if key.lower() in asked), None)
        if reply is None:
            raise RuntimeError(f"the secretary asked what the caller has no answer to: {asked!r}")
        last = await session.turn(Turn(say=reply), seed * 10 + attempt)
    return last


async def _message_checked(runtime: Any, config: SecretaryConfig, call_uuid: str, recipient: str) -> TurnResult:
    taken = [m for m in await runtime.messages.list_messages(config.domain_uuid) if str(m.call_uuid) == call_uuid]
    failures = []
    if len(taken) != 1:
        failures.append(f"{len(taken)} messages saved, expected one")
    elif taken[0].recipient != recipient:
        failures.append(f"message for {taken[0].recipient!r}, expected {recipient!r}")
    return TurnResult("[the message saved]", "", "", "", None, failures)


def _checked(turn: str, expect: Expect, answer: dict[str, Any]) -> TurnResult:
    action = answer["action"]
    said = answer["say"]["text"] if answer.get("say") else ""
    failures = check(expect, said, action["type"], action.get("destination"))
    return TurnResult(turn, answer.get("heard", ""), said, action["type"], action.get("destination"), failures)


async def run_scenario(
    http: aiohttp.ClientSession,
    url: str,
    runtime: Any,
    config: SecretaryConfig,
    scenario: Scenario,
    caller: Caller,
    base: Path,
) -> ScenarioResult:
    result = ScenarioResult(config.company or config.domain_name, scenario.name)
    call_uuid = str(uuid.uuid4())
    domain = str(config.domain_uuid)
    session = _CallSession(http, url, call_uuid, domain, caller, base)
    try:
        start = await _post(
            http,
            f"{url}/api/v1/calls",
            json={"domain_uuid": domain, "call_uuid": call_uuid, "caller_id_number": scenario.caller_id},
        )
        greeting = start["say"]["text"]
        failures = check(scenario.greeting, greeting, start["action"]["type"], None)
        if failures:
            result.turns.append(TurnResult("[greeting]", "", greeting, start["action"]["type"], None, failures))
        last: dict[str, Any] = start
        for index, turn in enumerate(scenario.turns):
            if last["action"]["type"] in ("transfer", "hangup"):
                if not all(t.optional for t in scenario.turns[index:]):
                    result.error = f"turn {index - 1}: the call ended ({last['action']['type']}) with turns to say"
                break
            seed = index + 1
            if turn.answers is not None:
                answer = await _answer_until(session, turn, last, seed)
            else:
                answer = await session.turn(turn, seed)
            result.turns.append(_checked(turn.describe(), turn.expect, answer))
            last = answer
        if scenario.ends is not None and result.error is None:
            result.turns.append(_checked("[the call's end]", scenario.ends, last))
        if scenario.message_for is not None and result.error is None:
            result.turns.append(await _message_checked(runtime, config, call_uuid, scenario.message_for))
    except (RuntimeError, aiohttp.ClientError, KeyError) as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        with suppress(RuntimeError, aiohttp.ClientError):
            await _post(http, f"{url}/api/v1/calls/{call_uuid}/end?domain_uuid={domain}", json={})
    return result


@dataclass
class Report:
    brain: str
    results: list[ScenarioResult]
    seconds: float

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def rate(self) -> float:
        return self.passed / len(self.results) if self.results else 0.0

    def table(self) -> str:
        lines = [
            "| business | scenario | result | first failure |",
            "|---|---|---|---|",
        ]
        for r in self.results:
            reason = r.first_failure().replace("|", "/")
            lines.append(f"| {r.business} | {r.scenario} | {'pass' if r.passed else 'FAIL'} | {reason} |")
        lines.append("")
        lines.append(
            f"**{self.passed} of {len(self.results)} passed ({self.rate:.0%})**, "
            f"brain `{self.brain}`, {self.seconds:.0f} s"
        )
        return "\n".join(lines)


async def evaluate(
    paths: Sequence[Path],
    settings: Settings,
    models: LocalModels,
    *,
    brain: str = "front_desk",
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    snr_db: float = 20.0,
    only: str | None = None,
) -> Report:
    """Runs every scenario of `paths` (files, or folders of *.yaml) through one in-process ivr_service."""
    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    businesses = [(f, load_business(f)) for f in files]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voiceai-eval-") as scratch:
        folder = Path(scratch)
        secretaries = folder / "secretaries.yaml"
        documents = [with_brain(b.config(), brain, llm_base_url, llm_model) for _, b in businesses]
        secretaries.write_text(yaml.safe_dump({"secretaries": documents}))
        allowed = [llm_base_url.split("//", 1)[-1].split("/", 1)[0]] if llm_base_url else []
        run_settings = settings.model_copy(
            update={
                "database_url": None,
                "redis_url": None,
                "secretaries_file": secretaries,
                "data_dir": folder / "data",
                "spool": settings.spool.model_copy(update={"dir": folder / "spool"}),
                "config_cache_s": 0,
                "endpoints": settings.endpoints.model_copy(update={"allow_hosts": allowed}),
            }
        )
        caller = Caller(models, snr_db)
        results: list[ScenarioResult] = []
        async with ivr_service(run_settings, models) as (url, runtime):
            for _, business in businesses:
                config = business.config()
                for document in business.documents:
                    info = await runtime.knowledge.add_document(
                        config.domain_uuid, document.name, document.text.encode()
                    )
                    if info.status != "indexed":
                        raise RuntimeError(f"{document.name}: {info.status}")
            async with aiohttp.ClientSession() as http:
                for path, business in businesses:
                    config = business.config()
                    for scenario in business.scenarios:
                        if only and only.lower() not in scenario.name.lower():
                            continue
                        results.append(await run_scenario(http, url, runtime, config, scenario, caller, path.parent))
    label = f"llm ({llm_model or 'default'}) + front_desk" if llm_base_url else brain
    return Report(label, results, time.perf_counter() - started)


DEFAULT_SCENARIOS = Path(__file__).resolve().parent.parent / "eval" / "scenarios"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "eval", help="run conversation scenarios through the v1 API and print a pass rate"
    )
    parser.add_argument("paths", nargs="*", type=Path, help=f"scenario files or folders (default: {DEFAULT_SCENARIOS})")
    parser.add_argument(
        "--brain", choices=("front_desk", "configured"), default="front_desk",
        help="front_desk: the offline brain alone; configured: each secretary's own chain",
    )  # fmt: skip
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible server (Ollama, llama.cpp) to put first")
    parser.add_argument("--llm-model", help="the model that server should use")
    parser.add_argument("--snr-db", type=float, default=20.0, help="line noise: signal-to-noise ratio in dB")
    parser.add_argument("--only", help="only scenarios whose name contains this")
    parser.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    return parser


async def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    models = LocalModels(settings.engines)
    report = await evaluate(
        args.paths or [DEFAULT_SCENARIOS],
        settings,
        models,
        brain=args.brain,
        llm_base_url=args.llm_base_url,
        llm_model=args.llm_model,
        snr_db=args.snr_db,
        only=args.only,
    )
    text = report.table()
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if report.results else 1


def main_sync(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_eval(settings, args))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"voiceai eval: {exc}", file=sys.stderr)
        return 2
