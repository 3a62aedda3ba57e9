"""The simulated FreeSWITCH against what a real one does with `mod_audio_stream` (PROTOCOLS.md §0), one fact
a test: `uuid_audio_stream start` answers `+OK Success` before it connects and a refused connection comes
later as `mod_audio_stream::error`; a server's close is `::disconnect` with its code and reason and its texts
are `::json`; `freeswitch.EventConsumer` sees every channel's events; ESL subscribers get CUSTOM events only
by subclass; `uuid_transfer`/`uuid_kill` over ESL reach the Lua session; media flows only while the script
sleeps; the module's handshake; the community build's files and `play` events, and a broadcast's start."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from freeswitch.caller import Run
from freeswitch.esl_protocol import EslEvent, EslParser, command
from freeswitch.esl_server_sim import EslServerSimulator
from freeswitch.lua_sim import FreeSwitchSim
from freeswitch.stream_sim import BROADCAST_START_MS, SimulatedCall, sound_end, sound_onset

pytestmark = pytest.mark.timeout(60)

DOMAIN = "d0000000-0001-4000-8000-000000000001"
REFUSED = {"status": "error", "message": {"code": 6, "error": "Connection refused (system error 111)"}}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sim_for(tmp_path: Path, source: str, **options: object) -> FreeSwitchSim:
    (tmp_path / "case.lua").write_text(source)
    return FreeSwitchSim(script_dir=tmp_path, **options)  # type: ignore[arg-type]


def logged(sim: FreeSwitchSim) -> list[str]:
    return [message for level, message in sim.result.log if level == "info"]


@dataclass
class StreamServer:
    """A WebSocket server standing in for the bridge: what it got, and what it does to each stream."""

    say: list[str] = field(default_factory=list)  # texts sent back once the metadata arrived
    close: tuple[int, str] | None = None  # then closes with this
    texts: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    headers: list[str] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)  # each stream's request headers
    closed_with: list[tuple[int | None, str]] = field(default_factory=list)
    connections: list[ServerConnection] = field(default_factory=list)
    port: int = 0

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.connections.append(ws)
        self.headers.append(ws.request.headers.get("Authorization", ""))
        self.handshakes.append({name.lower(): value for name, value in ws.request.headers.raw_items()})
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self.audio_bytes += len(message)
                    continue
                self.texts.append(message)
                for text in self.say:
                    await ws.send(text)
                if self.close is not None:
                    await ws.close(*self.close)
        finally:
            self.closed_with.append((ws.close_code, ws.close_reason or ""))

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/{DOMAIN}/call"


@asynccontextmanager
async def stream_server(server: StreamServer) -> AsyncIterator[StreamServer]:
    async with serve(server.handle, "127.0.0.1", 0) as ws_server:
        server.port = next(iter(ws_server.sockets)).getsockname()[1]
        yield server


# -- mod_audio_stream in the Lua simulator ------------------------------------------------------------------


def test_start_answers_ok_at_once_and_a_refused_connection_comes_later_as_an_error_event(tmp_path: Path) -> None:
    source = f"""
    local consumer = freeswitch.EventConsumer("CUSTOM", "mod_audio_stream::error")
    local url = "ws://127.0.0.1:{closed_port()}/stream/{DOMAIN}/" .. session:get_uuid()
    local reply = freeswitch.API():execute("uuid_audio_stream", session:get_uuid() .. " start " .. url .. " mono 16k")
    freeswitch.consoleLog("info", reply)
    local event = consumer:pop(1, 5000)
    freeswitch.consoleLog("info", event:getType() .. " " .. event:getHeader("Event-Subclass"))
    freeswitch.consoleLog("info", tostring(event:getHeader("Unique-ID") == session:get_uuid()))
    freeswitch.consoleLog("info", event:getBody())
    freeswitch.consoleLog("info", tostring(consumer:pop(0)))
    """
    sim = sim_for(tmp_path, source)
    result = sim.run("case.lua")
    assert result.lua_error is None and result.violations == [], (result.lua_error, result.violations)
    reply, kind, ours, body, nothing = logged(sim)
    assert reply == "+OK Success\n"  # nothing listens, and yet
    assert (kind, ours, nothing) == ("CUSTOM mod_audio_stream::error", "true", "nil")
    assert json.loads(body) == REFUSED


async def test_the_servers_texts_are_json_events_and_its_close_a_disconnect_with_code_and_reason(
    tmp_path: Path,
) -> None:
    server = StreamServer(say=['{"type":"voiceai.claimed"}'], close=(1008, "unauthorized: bad token"))
    async with stream_server(server):
        source = f"""
        local consumer = freeswitch.EventConsumer("CUSTOM", "mod_audio_stream::json")
        consumer:bind("CUSTOM", "mod_audio_stream::disconnect")
        consumer:bind("CUSTOM", "mod_audio_stream::connect")
        local line = session:get_uuid() .. ' start {server.url} mono 8k {{"caller_id_number":"1000"}}'
        freeswitch.API():execute("uuid_audio_stream", line)
        for _ = 1, 3 do
            local event = consumer:pop(1, 5000)
            freeswitch.consoleLog("info", event:getHeader("Event-Subclass") .. " " .. event:getBody())
        end
        """
        variables = {"STREAM_EXTRA_HEADERS": '{"Authorization":"Bearer t0ken"}', "domain_uuid": DOMAIN}
        sim = sim_for(tmp_path, source, variables=variables, loop=asyncio.get_running_loop())
        result = await asyncio.to_thread(sim.run, "case.lua")
    assert result.lua_error is None and result.violations == [], (result.lua_error, result.violations)
    assert logged(sim) == [
        'mod_audio_stream::connect {"status":"connected"}',
        'mod_audio_stream::json {"type":"voiceai.claimed"}',
        'mod_audio_stream::disconnect {"status":"disconnected","message":{"code":1008,'
        '"reason":"unauthorized: bad token"}}',
    ]
    assert server.texts == ['{"caller_id_number":"1000"}']  # the metadata, as the command line had it
    assert server.headers == ["Bearer t0ken"]  # STREAM_EXTRA_HEADERS
    # The module's handshake as measured: an Origin of the server's host and port; no subprotocol, no
    # compression offer, no User-Agent.
    handshake = server.handshakes[0]
    assert handshake["origin"] == f"http://127.0.0.1:{server.port}"
    assert handshake["sec-websocket-version"] == "13"
    assert not {"sec-websocket-protocol", "sec-websocket-extensions", "user-agent"} & handshake.keys()


async def test_media_flows_only_while_the_script_sleeps(tmp_path: Path) -> None:
    """`session:sleep` reads the call's media (the stream gets its frames); a script blocked elsewhere
    (`freeswitch.msleep`, a curl call) reads none, and the stream gets nothing meanwhile."""
    server = StreamServer()
    async with stream_server(server):
        source = f"""
        local consumer = freeswitch.EventConsumer("CUSTOM", "mod_audio_stream::connect")
        freeswitch.API():execute("uuid_audio_stream", session:get_uuid() .. " start {server.url} mono 16k")
        assert(consumer:pop(1, 5000))
        session:sleep(400)
        freeswitch.msleep(400)
        """
        sim = sim_for(tmp_path, source, loop=asyncio.get_running_loop())
        result = await asyncio.to_thread(sim.run, "case.lua")
        assert sim.stream is not None
        await sim.stream.wait_closed(5)
    assert result.lua_error is None and result.violations == []
    assert sim.stream.media_ms == 400
    assert server.audio_bytes == 20 * 640  # 400 ms of 16 kHz L16, nothing for the blocked 400 ms
    assert server.closed_with == [(1000, "Normal closure")]  # the call ended: the module closed the stream


def test_the_event_consumer_sees_every_channel_and_is_strict(tmp_path: Path) -> None:
    """FreeSWITCH gives a consumer the events of every channel (the script filters on Unique-ID)."""
    source = f"""
    local consumer = freeswitch.EventConsumer("CUSTOM", "mod_audio_stream::json")
    session:recordFile("{tmp_path}/x.wav", 1, 0, 0)
    local first, second = consumer:pop(0), consumer:pop(0)
    freeswitch.consoleLog("info", first:getHeader("Unique-ID") .. " " .. second:getHeader("Unique-ID"))
    freeswitch.consoleLog("info", tostring(first:getHeader("No-Such-Header")) .. " " .. tostring(consumer:pop(0)))
    local ok, err = pcall(function() return first.getBody() end)
    freeswitch.consoleLog("info", tostring(ok) .. " " .. err)
    """
    holder: list[FreeSwitchSim] = []

    def fire() -> None:
        for call in ("other-call", "this-call"):
            headers = {"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_stream::json", "Unique-ID": call}
            holder[0].switch.fire(EslEvent(headers, "{}"))
        holder[0].switch.fire(EslEvent({"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_stream::play"}))

    sim = sim_for(tmp_path, source, caller=[Run(fire)])
    holder.append(sim)
    sim.run("case.lua")
    assert sim.result.lua_error is None
    calls, missing, misuse = logged(sim)
    assert calls == "other-call this-call" and missing == "nil nil"
    assert misuse.startswith("false") and "Error in Event::getBody (arg 1), expected 'Event *'" in misuse


# -- the ESL side -----------------------------------------------------------------------------------------


async def esl_subscriber(port: int, subscription: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = EslParser()

    async def next_message() -> None:
        while not parser.feed(await reader.read(4096)):
            pass

    await next_message()  # auth/request
    for line in ("auth ClueCon", subscription):
        writer.write(command(line))
        await next_message()
    return reader, writer


async def test_esl_subscribers_get_custom_events_only_by_subclass_name() -> None:
    switch = EslServerSimulator()
    await switch.start()
    try:
        subscribers = {
            name: await esl_subscriber(switch.port, line)
            for name, line in {
                "custom": "event json CUSTOM",
                "named": "event json CUSTOM mod_audio_stream::error",
                "all": "event json ALL",
            }.items()
        }
        error = EslEvent(
            {"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_stream::error", "Unique-ID": "call-1"},
            json.dumps(REFUSED),
        )
        switch.fire(error)
        marker = EslEvent({"Event-Name": "CUSTOM", "Event-Subclass": "x::marker", "Unique-ID": "m"})
        switch.fire(marker)  # only ALL gets it: it ends what "all" reads below
        got: dict[str, list[str]] = {}
        for name, (reader, writer) in subscribers.items():
            parser, events = EslParser(), []
            try:
                async with asyncio.timeout(0.5 if name != "all" else 5):
                    while not any(e.subclass == "x::marker" for e in events):
                        events += [m.event() for m in parser.feed(await reader.read(65536)) if m.event()]  # type: ignore[misc]
            except TimeoutError:
                pass
            got[name] = [e.subclass for e in events]
            writer.close()
        assert got == {
            "custom": [],
            "named": ["mod_audio_stream::error"],
            "all": ["mod_audio_stream::error", "x::marker"],
        }
    finally:
        await switch.close()


@pytest.mark.parametrize("verb", ["uuid_transfer", "uuid_kill"])
async def test_esl_transfer_and_kill_reach_the_lua_session(tmp_path: Path, verb: str) -> None:
    """The script sleeps in a loop while streaming; the bridge's ESL command ends it."""
    server = StreamServer()
    switch = EslServerSimulator()
    await switch.start()
    try:
        async with stream_server(server):
            source = f"""
            freeswitch.API():execute("uuid_audio_stream", session:get_uuid() .. " start {server.url} mono 8k")
            while session:ready() do
                session:sleep(20)
            end
            freeswitch.consoleLog("info", session:getState())
            """
            sim = sim_for(tmp_path, source, switch=switch, loop=asyncio.get_running_loop())
            running = asyncio.create_task(asyncio.to_thread(sim.run, "case.lua"))
            stream = await sim.wait_stream()
            assert await stream.wait_connected()
            reader, writer = await esl_subscriber(switch.port, "event json CUSTOM mod_audio_stream::json")
            line = (
                f"uuid_transfer {sim.uuid} 1003 XML acme.example.com"
                if verb == "uuid_transfer"
                else f"uuid_kill {sim.uuid}"
            )
            writer.write(command(f"api {line}"))
            parser = EslParser()
            while not (replies := parser.feed(await reader.read(4096))):
                pass
            writer.close()
            if verb == "uuid_transfer":  # the call has moved on: the bridge ends the stream, as ours does
                await server.connections[0].close(1000, "finished")
            result = await running
    finally:
        await switch.close()
    assert replies[0].reply_text.startswith("+OK")
    assert result.lua_error is None and result.violations == []
    if verb == "uuid_transfer":
        assert logged(sim) == ["CS_ROUTING"]
        assert result.transfer is not None and (result.transfer.extension, result.transfer.context) == (
            "1003",
            "acme.example.com",
        )
    else:  # the call is gone: the module closed the stream
        assert logged(sim) == ["CS_HANGUP"]
        assert (result.hung_up_by, result.hangup_cause) == ("switch", "NORMAL_CLEARING")
        assert server.closed_with == [(1000, "Normal closure")]


# -- stream_sim on its own --------------------------------------------------------------------------------


async def test_a_simulated_call_connects_in_the_background_and_reports_failures_as_events() -> None:
    switch = EslServerSimulator()
    seen: list[EslEvent] = []
    switch.listen(seen.append)

    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")

    refused = SimulatedCall(f"ws://127.0.0.1:{closed_port()}", DOMAIN, switch=switch)
    assert await refused.start() is refused  # no exception: the failure comes later
    assert not await refused.wait_connected()
    assert refused.error == REFUSED
    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as busy:
        port = next(iter(busy.sockets)).getsockname()[1]
        rejected = await SimulatedCall(f"ws://127.0.0.1:{port}", DOMAIN, switch=switch).start()
        assert not await rejected.wait_connected()
    assert rejected.error is not None and "HTTP 503" in rejected.error["message"]["error"]
    assert [(e.subclass, e.unique_id) for e in seen] == [
        ("mod_audio_stream::error", refused.call_uuid),
        ("mod_audio_stream::error", rejected.call_uuid),
    ]
    await refused.hang_up()
    await rejected.hang_up()


async def test_the_community_build_announces_files_and_a_broadcast_sounds_200_ms_later(tmp_path: Path) -> None:
    """Each `streamAudio` becomes `<uuid>_<n>.tmp.r8` and a `play` event (`data` without the audio, plus
    `file`); the sound of its `uuid_broadcast` starts about 200 ms later; `uuid_break` in between stops it."""
    samples = (np.sin(np.arange(2400) * 2 * np.pi * 440 / 8000) * 8000).astype("<i2").tobytes()  # 300 ms
    data = {"audioDataType": "raw", "sampleRate": 8000, "audioData": base64.b64encode(samples).decode()}
    switch, plays = EslServerSimulator(), []
    switch.listen(lambda event: plays.append(event) if event.subclass == "mod_audio_stream::play" else None)
    server = StreamServer(say=[json.dumps({"type": "streamAudio", "data": data})])
    async with stream_server(server):
        call = SimulatedCall(f"ws://127.0.0.1:{server.port}", DOMAIN, mode="event", switch=switch, temp_dir=tmp_path)
        async with call:
            await call.wait_until(200)
            (play,) = plays
            body = json.loads(play.body)
            assert body == {"audioDataType": "raw", "sampleRate": 8000, "file": f"{tmp_path}/{call.call_uuid}_0.tmp.r8"}
            assert Path(body["file"]).read_bytes() == samples
            broadcast_at = call.media_ms
            assert call.play_file(body["file"])  # what `uuid_broadcast <uuid> <file> aleg` does
            await call.wait_until(broadcast_at + 600)
            assert sound_onset(call.heard(), broadcast_at) == broadcast_at + BROADCAST_START_MS
            assert sound_end(call.heard(), broadcast_at) == broadcast_at + BROADCAST_START_MS + 300
            broken_at = call.media_ms
            assert call.play_file(body["file"])
            await call.wait_until(broken_at + 100)
            call.break_all()  # `uuid_break <uuid> all` before the sound started
            await call.wait_until(broken_at + 600)
    assert sound_onset(call.heard(), broken_at) is None
