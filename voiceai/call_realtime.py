"""`voiceai call --realtime`: talk to the realtime bridge as FreeSWITCH would, without FreeSWITCH.

It plays the caller's side through the `mod_audio_stream` simulator: sentences you give are spoken by Piper
(or WAV files are played) in real time, the secretary's answers are transcribed and printed, and everything
the caller heard is saved as a WAV with its real timing. With no bridge listening (or with `--in-process`),
it starts one in this process, with a simulated ESL server so transfers and hangups show up, and the module
simulated is the community build (it plays nothing itself: the bridge broadcasts its files over ESL). A
running bridge is reached without ESL: the simulated module is then a playback build.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from bridge.server import BridgeServer
from freeswitch.esl import EslClient
from freeswitch.esl_server_sim import EslServerSimulator
from freeswitch.stream_sim import SimulatedCall
from secretary.access.stream_tokens import token_for_dialplan
from secretary.errors import SecretaryError
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, parse_wav
from secretary.speech.local_engines import LocalModels
from voiceai.call import speak

REPLY_WAIT_S = 30.0
ACTION_WAIT_S = 2.0


@dataclass
class _Bridge:
    url: str
    runtime: Runtime
    server: BridgeServer | None = None
    switch: EslServerSimulator | None = None

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        await self.runtime.close()
        if self.switch is not None:
            await self.switch.close()


def _listening(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def _bridge(settings: Settings, url: str | None, in_process: bool) -> _Bridge:
    host, port = settings.bridge.host, settings.bridge.port
    if url is None and not in_process and _listening(host, port):
        url = f"ws://{host}:{port}"
    if url is not None:
        return _Bridge(url, Runtime.create(settings))
    switch = EslServerSimulator(settings.bridge.esl.password.get_secret_value())
    esl_port = await switch.start()
    settings = settings.model_copy(
        update={
            "bridge": settings.bridge.model_copy(
                update={"esl": settings.bridge.esl.model_copy(update={"port": esl_port})}
            )
        }
    )
    runtime = Runtime.create(settings)
    print("starting the bridge in this process (loading the speech models)…", file=sys.stderr)
    await runtime.warm_up()
    esl = EslClient(settings.bridge.esl)
    esl.start()
    await esl.wait_connected(5)
    server = await BridgeServer(runtime, esl=esl).start(host="127.0.0.1", port=0)
    return _Bridge(f"ws://127.0.0.1:{server.port}", runtime, server, switch)


def _turns(args: argparse.Namespace, models: LocalModels, rate: int) -> list[tuple[str, Pcm]]:
    """The caller's turns in command-line order (`--say` spoken by Piper, `--wav` played as is)."""
    turns: list[tuple[str, Pcm]] = []
    for kind, value in args.utterances:
        if kind == "say":
            turns.append((value, speak(models, value).resampled(rate)))
        else:
            turns.append((str(value), parse_wav(Path(value).read_bytes()).resampled(rate)))
    return turns


def _transcribe(models: LocalModels, pcm: Pcm) -> str:
    segments, _ = models.whisper().transcribe(
        pcm.resampled(16000).to_float32(), language="en", beam_size=1, condition_on_previous_text=False
    )
    return " ".join(s.text.strip() for s in segments).strip()


def _since(call: SimulatedCall, start_ms: int) -> Pcm:
    heard = call.heard()
    return Pcm(heard.data[2 * call.rate * start_ms // 1000 :], call.rate)


async def run_realtime_call(settings: Settings, args: argparse.Namespace) -> int:
    bridge = await _bridge(settings, args.url, args.in_process)
    try:
        with tempfile.TemporaryDirectory(prefix="voiceai-fs-") as files:  # the simulated module's temp_dir
            return await _call(bridge, settings, args, Path(files))
    finally:
        await bridge.close()


async def _call(bridge: _Bridge, settings: Settings, args: argparse.Namespace, files: Path) -> int:
    models = bridge.runtime.models
    domain_uuid = args.domain_uuid
    if domain_uuid is None:
        try:
            domain_uuid = str((await bridge.runtime.secretaries.by_name(args.domain)).domain_uuid)
        except SecretaryError as exc:
            print(f"voiceai call: {exc}", file=sys.stderr)
            return 1
    token = token_for_dialplan(settings.bridge, UUID(domain_uuid)).value  # what its dialplan would carry
    turns = await asyncio.to_thread(_turns, args, models, args.rate)
    call = SimulatedCall(
        bridge.url,
        domain_uuid,
        sample_rate=args.rate,
        token=token,
        metadata={"caller_id_number": args.caller, "destination_number": "voiceai", "sample_rate": args.rate},
        mode="module" if bridge.switch is None else "event",
        switch=bridge.switch,
        temp_dir=files,
    )
    await call.start()
    if not await call.wait_connected():
        problem = call.error["message"]["error"] if call.error else f"closed {call.close_code} {call.close_reason}"
        print(f"voiceai call: can't reach the bridge at {bridge.url}: {problem}", file=sys.stderr)
        await call.hang_up()
        return 1
    try:
        await _converse(call, turns, models)
    finally:
        await call.hang_up()
    args.out.mkdir(parents=True, exist_ok=True)
    heard = call.write_heard(args.out / f"{call.call_uuid}-heard.wav")
    print(f"what the caller heard: {heard}")
    for extension, context in call.transfers:
        print(f"transferred to {extension} in {context}")
    if call.hangup_cause:
        print(f"hung up by the secretary ({call.hangup_cause})")
    if call.close_code not in (None, 1000):
        print(f"the bridge closed the stream: {call.close_code} {call.close_reason}")
        return 1
    return 0


async def _converse(call: SimulatedCall, turns: list[tuple[str, Pcm]], models: LocalModels) -> None:
    start = await call.secretary_speaks(timeout_s=REPLY_WAIT_S)
    await call.secretary_silent(timeout_s=REPLY_WAIT_S)
    print(f"secretary: {await asyncio.to_thread(_transcribe, models, _since(call, start))}")
    for label, pcm in turns:
        if call.closed.is_set():
            break
        print(f"caller:    {label}")
        said_at = call.say(pcm)
        try:
            start = await call.secretary_speaks(after_ms=said_at + 300, timeout_s=REPLY_WAIT_S)
            await call.secretary_silent(timeout_s=REPLY_WAIT_S)
        except (TimeoutError, ConnectionError):
            print("secretary: (no answer)")
            continue
        print(f"secretary: {await asyncio.to_thread(_transcribe, models, _since(call, start))}")
    if not call.closed.is_set():
        await call.secretary_silent(quiet_ms=500, timeout_s=REPLY_WAIT_S)
        # A transfer or goodbye is carried out once the last words have played on the bridge's timeline, which
        # may end a little after the simulator's: give the bridge that moment before the caller hangs up.
        with contextlib.suppress(TimeoutError):
            await call.wait_closed(ACTION_WAIT_S)
