"""The console's test calls at the bridge: only a token the console minted, for that domain and that call,
makes a stream a test call; a mod_audio_stream client can't, whatever its metadata says. A test call is the
same session and engines, played over the stream (whatever the domain's playback mode), with its turns sent
back as `voiceai.transcript` and its transfer only reported: FreeSWITCH is never sent a command for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from secretary.access.stream_tokens import (
    TEST_CALL_TOKEN_S,
    derive_domain_token,
    mint_test_call_token,
    valid_test_call_token,
)
from secretary.settings import BridgeSettings, Settings
from secretary.speech.local_engines import LocalModels
from tests.support.bridge import ACME, live_bridge
from tests.support.speech import Speech

pytestmark = pytest.mark.timeout(120)
SECRET = "test-call-secret-" + "x" * 32
CLINIC, GARAGE = uuid.UUID("d0000000-00c1-4000-8000-0000000000c1"), uuid.UUID("d0000000-00c2-4000-8000-0000000000c2")
FRAME_S = 0.02


def test_a_test_call_token_opens_one_call_of_one_domain_for_a_minute() -> None:
    settings = BridgeSettings(token_secret=SecretStr(SECRET))
    call, other_call = uuid.uuid4(), uuid.uuid4()
    token = mint_test_call_token(settings, CLINIC, call, 1000.0)
    assert token is not None and SECRET not in token
    assert valid_test_call_token(settings, token, CLINIC, call, 1000.0 + TEST_CALL_TOKEN_S - 1)
    assert not valid_test_call_token(settings, token, GARAGE, call, 1000.0)  # another domain
    assert not valid_test_call_token(settings, token, CLINIC, other_call, 1000.0)  # another call
    assert not valid_test_call_token(settings, token, CLINIC, call, 1000.0 + TEST_CALL_TOKEN_S)  # expired
    expiry, _, mac = token.partition(".")
    later = f"{int(expiry) + 30}.{mac}"  # a longer life is not the console's signature
    assert not valid_test_call_token(settings, later, CLINIC, call, 1000.0)
    other_secret = BridgeSettings(token_secret=SecretStr(SECRET + "y"))
    assert not valid_test_call_token(other_secret, token, CLINIC, call, 1000.0)
    assert mint_test_call_token(BridgeSettings(), CLINIC, call, 1000.0) is None  # no token_secret: no test calls
    assert not valid_test_call_token(BridgeSettings(), token, CLINIC, call, 1000.0)
    assert token != derive_domain_token(SECRET, CLINIC)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason or ""


async def speak(ws: ClientConnection, pcm: bytes, rate: int) -> None:
    """The caller's words in 20 ms frames at real time, then silence until the call ends."""
    size = int(rate * FRAME_S) * 2
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        while True:
            offset = sent * size
            frame = pcm[offset : offset + size]
            await ws.send(frame + b"\x00" * (size - len(frame)))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * FRAME_S - loop.time()))


async def test_only_the_consoles_token_for_that_domain_and_call_makes_a_test_call(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    async with live_bridge(make_settings, models, playback_mode="event", token_secret=SECRET) as bridge:
        settings = bridge.runtime.settings.bridge
        call = uuid.uuid4()
        token = mint_test_call_token(settings, uuid.UUID(ACME), call, time.time())
        ws = await connect(f"{bridge.url}/stream/{CLINIC}/{call}?test_call={token}")  # minted for acme
        assert await closed_with(ws) == (1008, "unauthorized: missing or invalid bearer token")
        forged = await connect(  # a domain's own bearer token does not make a forged test token pass
            f"{bridge.url}/stream/{ACME}/{uuid.uuid4()}?test_call=9999999999.forged",
            additional_headers={"Authorization": f"Bearer {derive_domain_token(SECRET, uuid.UUID(ACME))}"},
        )
        assert (await closed_with(forged))[0] == 1008

        normal = uuid.uuid4()  # a mod_audio_stream client asking in its metadata to be a test call
        ws = await connect(
            f"{bridge.url}/stream/{ACME}/{normal}",
            additional_headers={"Authorization": f"Bearer {derive_domain_token(SECRET, uuid.UUID(ACME))}"},
        )
        await ws.send(json.dumps({"sample_rate": 8000, "test_call": "true", "voiceai_test_call": token,
                                  "playback_mode": "module"}))  # fmt: skip
        assert json.loads(await ws.recv())["type"] == "voiceai.claimed"
        session = bridge.server.sessions[str(normal)]
        assert not session.test_call and session.playback_mode == "event"
        await ws.close()
        record = await bridge.call_over(str(normal))
        assert record.transport == "realtime"


async def test_a_test_call_is_played_over_the_stream_and_its_transfer_only_reported(
    make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with live_bridge(make_settings, models, playback_mode="event", token_secret=SECRET) as bridge:
        assert bridge.switch is not None and bridge.esl is not None and bridge.esl.connected
        call = uuid.uuid4()
        token = mint_test_call_token(bridge.runtime.settings.bridge, uuid.UUID(ACME), call, time.time())
        ws = await connect(f"{bridge.url}/stream/{ACME}/{call}?sample_rate=8000&test_call={token}", max_size=None)
        await ws.send(json.dumps({"sample_rate": 8000, "caller_id_name": "Console test call"}))
        words = speech.say("Please put me through to sales.", 8000).data
        caller = asyncio.create_task(speak(ws, b"\x00" * 16000 + words, 8000))
        messages: list[dict[str, Any]] = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(60):
                async for text in ws:
                    if isinstance(text, str):
                        messages.append(json.loads(text))
        caller.cancel()
        kinds = [m["type"] for m in messages]
        assert kinds[0] == "voiceai.claimed" and "streamAudio" in kinds  # module playback: acme's is event
        assert {m["data"]["sampleRate"] for m in messages if m["type"] == "streamAudio"} == {8000}
        greeting, turn = [m for m in messages if m["type"] == "voiceai.transcript"]
        assert greeting["turn"] == 0 and greeting["caller"] == "" and greeting["secretary"].startswith("Hello")
        assert "put me through" in turn["caller"].lower() and "Sales" in turn["secretary"]  # Whisper: "sails"
        assert turn["action"]["type"] == "transfer" and turn["action"]["destination"] == "1002"
        (action,) = [m for m in messages if m["type"] == "voiceai.action"]
        assert action["action"] == "transfer" and action["destination"] == "1002" and action["call_uuid"] == str(call)
        assert not [c for c in bridge.switch.commands if str(call) in c]  # FreeSWITCH was never asked anything
        record = await bridge.call_over(str(call))
        assert record.transport == "test" and record.outcome == "transfer" and record.outcome_destination == "1002"
        assert bridge.counter("voiceai_esl_failures", command="uuid_transfer") == 0
        again = await connect(f"{bridge.url}/stream/{ACME}/{call}?sample_rate=8000&test_call={token}")
        assert (await closed_with(again))[0] == 1008  # a token opens one stream: replayed, nothing reopens
