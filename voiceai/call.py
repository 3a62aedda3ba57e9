"""`voiceai call`: talk to a secretary exactly as a FreeSWITCH caller would.

The real `lua/secretary_ai.lua` runs in the FreeSWITCH simulator against the ivr_service at `--url`; when
nothing answers there, an ivr_service is started in this process (the configured settings: offline engines
and the demo tenant unless configured otherwise) for the length of the call. The caller's side is spoken
by the local Piper voice (`--say`), read from WAV files (`--wav`), or typed at a prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from freeswitch.caller import CallerAction, Say
from freeswitch.lua_sim import CallResult, FreeSwitchSim
from freeswitch.mod_curl import CurlExchange
from secretary.errors import BadInput
from secretary.observability import configure_logging
from secretary.settings import Settings
from secretary.speech.audio import Pcm, parse_wav, wav_bytes
from secretary.speech.local_engines import LocalModels

FALLBACK_PROMPT_TEXT = "Please hold while we connect your call."
FALLBACK_DESTINATION = "operator"  # only shown: the simulated call goes nowhere
Utterance = tuple[str, Any]  # ("say", text) or ("wav", Path)


class CallFailed(Exception):
    pass


async def run_call(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging("WARNING", "console")  # the conversation is the output; the service only warns
    try:
        utterances = _utterances(args)
    except CallFailed as exc:
        print(f"voiceai call: {exc}", file=sys.stderr)
        return 2
    url = (args.url or f"http://{settings.ivr.host}:{settings.ivr.port}").rstrip("/")
    async with _service(settings, url) as (service_url, models):
        with tempfile.TemporaryDirectory(prefix="voiceai-call-") as scratch:
            prompt = Path(scratch) / "fallback-prompt.wav"
            prompt.write_bytes(wav_bytes(await asyncio.to_thread(speak, models, FALLBACK_PROMPT_TEXT)))
            sim = FreeSwitchSim(
                variables={
                    "domain_name": args.domain,
                    "caller_id_number": args.caller,
                    "caller_id_name": "voiceai call",
                    "destination_number": "voiceai",
                    "voiceai_url": service_url,
                    "voiceai_fallback": FALLBACK_DESTINATION,
                    "voiceai_fallback_prompt": str(prompt),
                },
                global_variables=_globals(settings),
                caller=_caller(utterances, models),
                on_exchange=_print_exchange,
            )
            print(f"calling {args.domain} at {service_url} (call {sim.uuid})")
            result = await asyncio.to_thread(sim.run)
            saved = _save_replies(result, Path(args.out) / result.uuid, str(prompt))
    return _report(result, saved)


def _globals(settings: Settings) -> dict[str, str]:
    """What vars.xml would set: the service's shared secret, as an admin configures it for FreeSWITCH."""
    secret = settings.ivr.shared_secret
    return {"voiceai_secret": secret.get_secret_value()} if secret else {}


def _utterances(args: argparse.Namespace) -> list[Utterance]:
    order: list[Utterance] = list(getattr(args, "utterances", None) or [])
    if not order:
        order = [("say", text) for text in args.say] + [("wav", path) for path in args.wav]
    for kind, value in order:
        if kind == "wav" and not Path(value).is_file():
            raise CallFailed(f"--wav {value}: no such file")
    return order


@asynccontextmanager
async def _service(settings: Settings, url: str) -> AsyncIterator[tuple[str, LocalModels]]:
    """The service at `url` if one answers there, else one of our own on a free loopback port."""
    if await _answers(url):
        yield url, LocalModels(settings.engines)
        return
    from ivr_service.app import create_app
    from secretary.runtime import Runtime

    print(f"no ivr_service answers at {url}: starting one in this process (loading the speech models)")
    runtime = Runtime.create(settings)
    runner = web.AppRunner(create_app(runtime), access_log=None, handle_signals=False)
    try:
        await runtime.warm_up()
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}", runtime.models
        finally:
            await runner.cleanup()
    finally:
        await runtime.close()


async def _answers(url: str) -> bool:
    if urlsplit(url).scheme not in ("http", "https"):
        return False
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as client,
            client.get(url + "/health") as response,
        ):
            return response.status in (200, 503)  # 503: up, but a dependency is down (still worth a call)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


def speak(models: LocalModels, text: str) -> Pcm:
    """The caller's voice. Without Piper's random variation the same sentence is the same audio, so a call
    can be repeated exactly."""
    from piper import SynthesisConfig

    voice = models.piper()
    settings = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    audio = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(text, syn_config=settings))
    return Pcm(audio, voice.config.sample_rate)


def _caller(utterances: list[Utterance], models: LocalModels) -> Callable[[], CallerAction | None]:
    """The caller's next utterance, made when the script starts recording (it runs in the call's thread)."""
    if not utterances:
        return lambda: _typed(models)
    pending: Iterator[Utterance] = iter(utterances)

    def next_action() -> CallerAction | None:
        item = next(pending, None)
        if item is None:
            return None  # nothing more to say: the caller hangs up
        kind, value = item
        if kind == "say":
            print(f"you say:    {value}")
            return Say(speak(models, str(value)))
        print(f"you play:   {value}")
        try:
            return Say(parse_wav(Path(value).read_bytes()))
        except (OSError, BadInput) as exc:
            print(f"voiceai call: --wav {value}: {exc}", file=sys.stderr)
            return None

    return next_action


def _typed(models: LocalModels) -> CallerAction | None:
    try:
        line = input("you (empty line hangs up)> ").strip()
    except EOFError:
        line = ""
    return Say(speak(models, line)) if line else None


def _print_exchange(exchange: CurlExchange) -> None:
    path = urlsplit(exchange.url).path
    try:
        reply: dict[str, Any] = json.loads(exchange.response_body or b"null") or {}
    except ValueError:
        reply = {}
    if not 200 <= exchange.status < 300:
        error = reply.get("error", {}) if isinstance(reply, dict) else {}
        what = f"HTTP {exchange.status}" if exchange.status else f"no answer (curl exit code {exchange.exit_code})"
        print(f"service:    {what} {error.get('code', '')} {error.get('message', '')}".rstrip())
        return
    if path.endswith("/end"):
        print(f"call ended: {reply.get('turns')} turns, {reply.get('duration_ms')} ms")
        return
    if path.endswith("/dtmf"):
        request = json.loads(exchange.request_body or b"{}")
        print(f"you press:  {request.get('digits')}")
    elif "heard" in reply:
        timings = reply.get("timings", {})
        print(f"heard:      {reply['heard']!r}   ({timings.get('total_ms', '?')} ms)")
    say, action = reply.get("say", {}), reply.get("action", {})
    label = action.get("type", "?")
    if label == "transfer":
        label += f" to {action.get('destination')} ({action.get('context')})"
    print(f"secretary:  {say.get('text', '')}   [{label}]")


def _save_replies(result: CallResult, folder: Path, fallback_prompt: str) -> list[Path]:
    saved: list[Path] = []
    for index, played in enumerate(result.played, start=1):
        if played.data is None:
            continue
        name = "fallback-prompt" if played.path == fallback_prompt else "secretary"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{index:02d}-{name}.wav"
        target.write_bytes(played.data)
        saved.append(target)
    return saved


def _report(result: CallResult, saved: list[Path]) -> int:
    if result.transfer is not None:
        print(f"outcome:    transferred to {result.transfer.extension} ({result.transfer.context})")
    elif result.hung_up_by == "script":
        print("outcome:    the secretary hung up")
    elif result.hung_up_by == "caller":
        print("outcome:    you hung up")
    if saved:
        print(f"replies:    {len(saved)} WAV files in {saved[0].parent}")
    failed = "falling back" in result.log_text()
    for violation in result.violations:
        print(f"simulator:  {violation}", file=sys.stderr)
    if result.lua_error:
        print(f"lua error:  {result.lua_error}", file=sys.stderr)
    if failed:
        print("the script fell back: " + result.log_text().split("falling back: ", 1)[1].splitlines()[0])
    return 1 if failed or result.lua_error or result.violations else 0
