"""The bridge's front door and bad input: authentication, unknown or disabled domains, missing or broken
metadata, bad frames, floods, and sockets dropped without a word. The echo engine keeps these cheap: it
plays the caller's audio back, so "the call goes on" is checked by hearing audio come back."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bridge.protocol import StreamAudio, parse_server_message
from secretary.calls.models import CallState
from secretary.settings import Settings
from secretary.speech.local_engines import LocalModels
from tests.conftest import EXAMPLE_SECRETARIES
from tests.support import databases
from tests.support.bridge import ACME, LiveBridge, live_bridge

pytestmark = pytest.mark.timeout(60)
TONE = b"\x00\x10\x00\xf0" * 80  # 20 ms at 8 kHz, loud enough to hear
DISABLED = "d0000000-0009-4000-8000-000000000009"


def secretaries_with_a_disabled_one(tmp_path: Path) -> Path:
    document = yaml.safe_load(EXAMPLE_SECRETARIES.read_text())
    acme = document["secretaries"][0]
    document["secretaries"].append(acme | {"domain_uuid": DISABLED, "domain_name": "off.example.com", "enabled": False})
    path = tmp_path / "secretaries.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def open_stream(
    bridge: LiveBridge, domain: str = ACME, token: str | None = None, query: str = ""
) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{bridge.url}/stream/{domain}/{uuid.uuid4()}" + (f"?{query}" if query else "")
    return await connect(url, additional_headers=headers, max_size=None)


async def closed_with(ws: ClientConnection) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code, ws.close_reason or ""


async def echoed(ws: ClientConnection, frames: int = 10) -> StreamAudio:
    """Sends `frames` 20 ms frames in real time and returns the first audio that comes back."""
    async with asyncio.timeout(10):
        for _ in range(frames):
            await ws.send(TONE)
            await asyncio.sleep(0.02)
        while True:
            message = parse_server_message(str(await ws.recv()))
            if isinstance(message, StreamAudio):
                return message


@pytest.fixture
def echo_bridge(make_settings: Callable[..., Settings], models: LocalModels) -> Callable[..., object]:
    def build(**bridge: object) -> object:
        return live_bridge(make_settings, models, with_esl=False, engine="echo", **bridge)

    return build


async def test_streams_for_unknown_or_disabled_domains_are_closed_1008(
    make_settings: Callable[..., Settings], models: LocalModels, tmp_path: Path
) -> None:
    file = secretaries_with_a_disabled_one(tmp_path)
    async with live_bridge(make_settings, models, with_esl=False, engine="echo", secretaries_file=file) as bridge:
        unknown = await open_stream(bridge, domain=str(uuid.uuid4()))
        await unknown.send('{"sample_rate":8000}')
        assert (await closed_with(unknown))[0] == 1008
        assert "unknown_domain" in unknown.close_reason
        disabled = await open_stream(bridge, domain=DISABLED)
        await disabled.send('{"sample_rate":8000}')
        code, reason = await closed_with(disabled)
        assert code == 1008 and "secretary_disabled" in reason
        bad_path = await connect(f"{bridge.url}/stream/not-a-uuid/{uuid.uuid4()}")
        assert (await closed_with(bad_path))[0] == 1008
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0  # no engine ever started
        assert bridge.counter("voiceai_errors", code="unknown_domain") == 1
        assert bridge.counter("voiceai_errors", code="secretary_disabled") == 1


async def test_disabled_fusionpbx_domain_is_refused(
    make_settings: Callable[..., Settings], models: LocalModels, fusionpbx_url: str
) -> None:
    async with live_bridge(make_settings, models, with_esl=False, engine="echo", database_url=fusionpbx_url) as bridge:
        initech = await open_stream(bridge, domain=databases.INITECH)
        await initech.send('{"sample_rate":8000}')
        code, reason = await closed_with(initech)
        assert code == 1008 and "domain_disabled" in reason
        acme = await open_stream(bridge, domain=databases.ACME)
        await acme.send('{"sample_rate":8000}')
        assert (await echoed(acme)).sample_rate == 8000
        await acme.close()


async def test_bearer_tokens_per_deployment_and_per_domain(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    tokens = {"auth_token": "deploy-secret", "domain_tokens": {ACME: "acme-secret"}}
    async with live_bridge(make_settings, models, with_esl=False, engine="echo", **tokens) as bridge:
        for token in (None, "wrong"):
            ws = await open_stream(bridge, token=token)
            code, reason = await closed_with(ws)
            assert code == 1008 and "unauthorized" in reason
        other_domain = await open_stream(bridge, domain=str(uuid.uuid4()), token="acme-secret")
        assert "unauthorized" in (await closed_with(other_domain))[1]  # a domain's token opens only its domain
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0
        for token in ("deploy-secret", "acme-secret"):
            ws = await open_stream(bridge, token=token)
            await ws.send('{"sample_rate":8000}')
            await echoed(ws)
            await ws.close()
        assert bridge.counter("voiceai_errors", code="unauthorized") == 3


@pytest.mark.parametrize(
    ("first", "query", "rate"),
    [(None, "", 8000), (None, "sample_rate=16000", 16000), ("this is { not json", "", 8000),
     ('{"sample_rate":"16k","caller_id_number":"+15550100"}', "", 16000), ('{"sample_rate":Infinity}', "", 8000),
     ('{"sample_rate":1e999}', "sample_rate=16000", 16000), ('{"sample_rate":' + "7" * 4400 + "}", "", 8000)],
)  # fmt: skip
async def test_missing_or_broken_metadata_falls_back_to_the_url(
    echo_bridge: Callable[..., object], first: str | None, query: str, rate: int
) -> None:
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        ws = await open_stream(bridge, query=query)
        if first is not None:
            await ws.send(first)
        else:
            await asyncio.sleep(0.2)
            await ws.send(TONE if rate == 8000 else TONE * 2)  # audio first: no metadata
        audio = await echoed(ws, frames=12)
        assert audio.sample_rate == rate
        await ws.close()


async def test_a_path_urllib_cannot_split_is_refused_1008_not_1011(echo_bridge: Callable[..., object]) -> None:
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        ws = await connect(f"{bridge.url}//[/stream/{ACME}/{uuid.uuid4()}")
        code, reason = await closed_with(ws)
        assert code == 1008 and "bad_path" in reason


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_stream_for_another_domains_live_call_is_refused_and_touches_nothing(
    make_settings: Callable[..., Settings], models: LocalModels, redis_url: str, store: str
) -> None:
    """ESL is down, so FreeSWITCH can't say whose channel it is: the call-state store's claim does."""
    overrides = {"redis_url": redis_url} if store == "redis" else {}
    async with live_bridge(make_settings, models, with_esl=False, engine="echo", **overrides) as bridge:
        call_uuid = uuid.uuid4()
        globex_call = CallState(
            call_uuid=call_uuid, domain_uuid=databases.GLOBEX, domain_name="globex.example.com", transport="turn"
        )
        await bridge.runtime.call_states.put(globex_call)  # globex's live v1 call
        ws = await connect(f"{bridge.url}/stream/{ACME}/{call_uuid}")
        await ws.send('{"sample_rate":8000}')
        code, reason = await closed_with(ws)
        assert code == 1008 and "wrong_domain" in reason
        assert await bridge.runtime.call_states.get(call_uuid) == globex_call
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0
        await bridge.runtime.call_states.delete(globex_call.domain_uuid, call_uuid)


async def test_connections_past_the_cap_get_a_503_and_a_silent_socket_is_closed_at_the_handshake_deadline(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    """No client, authenticated or not, can hold the process's descriptors: open connections are capped, and a
    socket that never finishes its handshake is closed at `handshake_timeout_s`."""
    async with live_bridge(make_settings, models, engine="echo", max_connections=2, handshake_timeout_s=0.5) as bridge:
        first, second = await open_stream(bridge), await open_stream(bridge)
        with pytest.raises(InvalidStatus) as refused:
            await open_stream(bridge)
        assert refused.value.response.status_code == 503
        await first.close()  # the closing handshake is done: the bridge no longer counts it as open
        third = await open_stream(bridge)  # a place came free
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.server.port)
        writer.write(b"GET /stream/ HTTP/1.1\r\n")  # ...and never the rest
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed by the bridge
        writer.close()
        await second.close()
        await third.close()
        assert bridge.counter("voiceai_errors", code="too_many_connections") == 1


async def test_a_stream_nobody_can_vouch_for_is_not_served(
    make_settings: Callable[..., Settings], models: LocalModels
) -> None:
    """ESL down and Redis down: nothing can tell whose call it is, so the stream is refused, never served."""
    async with live_bridge(
        make_settings, models, with_esl=False, engine="echo", redis_url="redis://127.0.0.1:9/0"
    ) as bridge:
        ws = await open_stream(bridge)
        await ws.send('{"sample_rate":8000}')
        code, reason = await closed_with(ws)
        assert code == 1011 and reason == "dependency_unavailable"
        assert bridge.counter("voiceai_calls_started", transport="realtime") == 0


async def test_bad_frames_are_dropped_and_counted_and_the_call_goes_on(echo_bridge: Callable[..., object]) -> None:
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        bystander = await open_stream(bridge)
        await bystander.send('{"sample_rate":8000}')
        ws = await open_stream(bridge)
        await ws.send('{"sample_rate":8000}')
        await ws.send(b"\x00" * 321)
        await ws.send("a text frame in the middle of the audio")
        await ws.send(b"\x00" * 1_000_000)
        await ws.send(b"")
        await echoed(ws)
        await echoed(bystander)
        for reason in ("odd_length", "unexpected_text", "too_large", "empty"):
            assert bridge.counter("voiceai_dropped_frames", reason=reason) == 1, reason
        huge = await open_stream(bridge)
        await huge.send('{"sample_rate":8000}')
        await huge.send(b"\x00" * (3 * 2**20))  # beyond what the socket accepts: that one stream is closed
        assert (await closed_with(huge))[0] == 1009
        await echoed(ws)  # the others are untouched
        await ws.close()
        await bystander.close()


async def test_a_flood_faster_than_real_time_is_dropped(echo_bridge: Callable[..., object]) -> None:
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        ws = await open_stream(bridge)
        await ws.send('{"sample_rate":8000}')
        for _ in range(500):  # 10 s of audio at once
            await ws.send(TONE)
        await echoed(ws)
        flood = bridge.counter("voiceai_dropped_frames", reason="flood")
        assert 350 <= flood <= 460, flood  # ~1 s allowance (50 frames) admitted, the rest refused
        await ws.close()


async def test_200_sockets_dropped_without_a_word_leak_nothing(echo_bridge: Callable[..., object]) -> None:
    """Half of them vanish at once (opened well within the default 2 s metadata deadline), half are served
    once the bridge stops waiting for their metadata (its claim arrives), then vanish."""
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)
        tasks_before = len(asyncio.all_tasks())
        for batch in range(4):
            sockets = [await open_stream(bridge) for _ in range(50)]
            if batch % 2:
                async with asyncio.timeout(30):
                    for ws in sockets:
                        assert json.loads(await ws.recv())["type"] == "voiceai.claimed"
            for ws in sockets:
                ws.transport.abort()
        for _ in range(600):  # the sessions that started wind down (their records are saved): up to 30 s loaded
            if not bridge.server.sessions and len(asyncio.all_tasks()) <= tasks_before:
                break
            await asyncio.sleep(0.05)
        assert not bridge.server.sessions and len(asyncio.all_tasks()) <= tasks_before
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, ServerConnection)]
        assert alive == []
        assert bridge.counter("voiceai_calls_started", transport="realtime") <= 100
        ok = await open_stream(bridge)
        await ok.send(json.dumps({"sample_rate": 8000}))
        await echoed(ok)
        await ok.close()


async def test_health_endpoint(echo_bridge: Callable[..., object]) -> None:
    async with echo_bridge() as bridge:  # type: ignore[attr-defined]
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.server.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await reader.read(4096)
        writer.close()
        assert b"200 OK" in response and b'"active_calls": 0' in response
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        metrics = await reader.read(65536)
        writer.close()
        assert b"200 OK" in metrics and b"voiceai_calls_started" in metrics
