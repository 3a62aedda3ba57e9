"""The ESL call-control client against the simulated event socket: auth, commands, filtered events,
reconnection with subscriptions replayed, timeouts and a wrong password."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from freeswitch.esl import PLACEHOLDER_FILTER, EslClient, EslUnavailable
from freeswitch.esl_protocol import EslEvent, EslMessage, EslParser, command, event_json, message
from freeswitch.esl_server_sim import EslServerSimulator
from secretary.settings import EslSettings
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(30)


class Channel:
    def __init__(self) -> None:
        self.done: list[str] = []

    def play_file(self, path: str) -> bool:
        self.done.append(f"play {path}")
        return True

    def break_all(self) -> None:
        self.done.append("break")

    def hangup(self, cause: str) -> None:
        self.done.append(f"hangup {cause}")

    def transfer(self, extension: str, context: str) -> None:
        self.done.append(f"transfer {extension} {context}")


@pytest.fixture
async def switch() -> AsyncIterator[EslServerSimulator]:
    server = EslServerSimulator()
    await server.start()
    yield server
    await server.close()


def settings(port: int, **extra: object) -> EslSettings:
    return EslSettings.model_validate({"port": port, "reconnect_max_s": 0.3, "command_timeout_s": 1.0, **extra})


def play_event(call_uuid: str) -> EslEvent:
    return EslEvent(
        {"Event-Name": "CUSTOM", "Event-Subclass": "mod_audio_stream::play", "Unique-ID": call_uuid},
        '{"file":"/tmp/x.r8"}',
    )


async def test_commands_and_events_only_for_watched_calls(switch: EslServerSimulator) -> None:
    channel = Channel()
    switch.register("call-1", channel)
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        reply = await client.transfer("call-1", "1003", "acme.example.com")
        assert reply.ok and channel.done == ["transfer 1003 acme.example.com"]
        assert not (await client.api("uuid_kill no-such-call")).ok
        received: list[EslEvent] = []
        unwatch = client.watch("call-1", received.append)
        await until(lambda: switch.filtering("Unique-ID", "call-1"), within_s=10)
        switch.fire(play_event("call-2"))  # another call on the same FreeSWITCH: filtered out
        switch.fire(play_event("call-1"))
        await until(lambda: bool(received), within_s=10)
        assert [e.unique_id for e in received] == ["call-1"]
        unwatch()
        await until(lambda: not switch.filtering("Unique-ID", "call-1"), within_s=10)
        client.watch("call-3", received.append)
        await until(lambda: switch.filtering("Unique-ID", "call-3"), within_s=10)
        switch.fire(play_event("call-1"))
        switch.fire(play_event("call-3"))  # events come in order: once call-3's is here, call-1's is not coming
        await until(lambda: len(received) == 2, within_s=10)
        assert [e.unique_id for e in received] == ["call-1", "call-3"]
    finally:
        await client.close()


async def test_reconnects_and_replays_its_subscriptions(switch: EslServerSimulator) -> None:
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        received: list[EslEvent] = []
        client.watch("call-9", received.append)
        port = switch.port
        await switch.close()  # FreeSWITCH restarts
        await until(lambda: not client.connected, within_s=10)
        with pytest.raises(EslUnavailable):
            await client.api("status")
        restarted = EslServerSimulator()
        await restarted.start(port=port)
        try:
            assert await client.wait_connected(5)
            assert client.connections == 2
            assert (await client.api("status")).ok
            await until(lambda: restarted.filtering("Unique-ID", "call-9"), within_s=10)  # replayed
            restarted.fire(play_event("call-9"))
            await until(lambda: bool(received), within_s=10)
            assert [e.unique_id for e in received] == ["call-9"]
        finally:
            await restarted.close()
    finally:
        await client.close()


async def test_a_command_without_reply_times_out_and_the_link_is_rebuilt(switch: EslServerSimulator) -> None:
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        switch.reply_delay_s = 2.0
        with pytest.raises(EslUnavailable, match="no reply"):
            await client.api("status")
        switch.reply_delay_s = 0.0
        assert await client.wait_connected(5)
        assert (await client.api("status")).ok and client.connections == 2
    finally:
        await client.close()


async def test_a_malformed_event_is_skipped_and_call_control_goes_on(switch: EslServerSimulator) -> None:
    """One bad event (a 4,400-digit number: `int()` refuses it with a ValueError of its own) once ended the
    client for good; now it is logged and skipped, and the link serves the next event and command."""
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        arrived = asyncio.Event()
        client.watch("call-1", lambda event: arrived.set())
        malformed = message({"Content-Type": "text/event-json"}, b'{"Unique-ID":"call-1","n":' + b"7" * 4400 + b"}")
        switch.send_raw(malformed + event_json(play_event("call-1")))
        async with asyncio.timeout(5):
            await arrived.wait()
        assert (await client.api("status")).ok and client.connections == 1
    finally:
        await client.close()


async def test_a_frame_that_is_not_esl_makes_the_client_reconnect(switch: EslServerSimulator) -> None:
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        switch.send_raw(b"Content-Length: " + b"9" * 4400 + b"\n\n")
        async with asyncio.timeout(10):
            while client.connections < 2:
                await client.wait_connected(5)
                await asyncio.sleep(0.05)  # polling: the drop and the reconnection are not events we can await
        assert (await client.api("status")).ok
    finally:
        await client.close()


async def test_wrong_password_never_connects(switch: EslServerSimulator) -> None:
    client = EslClient(settings(switch.port, password=SecretStr("wrong")))
    client.start()
    try:
        assert not await client.wait_connected(1.0)
        with pytest.raises(EslUnavailable):
            await client.kill("call-1")
    finally:
        await client.close()


class RawSubscriber:
    """A bare event-socket client: what FreeSWITCH sends for a given `event` command, nothing of ours."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer, self._parser = reader, writer, EslParser()
        self._backlog: list[EslMessage] = []

    @classmethod
    async def connect(cls, port: int, *lines: str) -> RawSubscriber:
        subscriber = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert (await subscriber.next()).content_type == "auth/request"
        for line in ("auth ClueCon", *lines):
            subscriber._writer.write(command(line))
            assert (await subscriber.next()).reply_text.startswith("+OK"), line
        return subscriber

    async def next(self, timeout_s: float = 2.0) -> EslMessage:
        async with asyncio.timeout(timeout_s):
            while not self._backlog:
                self._backlog += self._parser.feed(await self._reader.read(65536))
        return self._backlog.pop(0)

    async def events(self, wait_s: float = 0.3) -> list[EslEvent]:
        out: list[EslEvent] = []
        try:
            while True:
                event = (await self.next(wait_s)).event()
                if event is not None:
                    out.append(event)
        except TimeoutError:
            return out

    def close(self) -> None:
        self._writer.close()


async def test_a_key_is_a_dtmf_event_for_who_names_it_before_custom(switch: EslServerSimulator) -> None:
    """mod_event_socket reads every word after CUSTOM as a subclass: `event json DTMF CUSTOM a::b` gets the
    keys, `event json CUSTOM a::b DTMF` and `event json CUSTOM` don't; a `filter Unique-ID` keeps other calls'
    keys out. The bridge's client subscribes the first way and hands a watched call its keys."""
    switch.register("call-1", Channel())
    switch.register("call-2", Channel())
    play = "mod_audio_stream::play"
    named = await RawSubscriber.connect(switch.port, f"event json DTMF CUSTOM {play}", "filter Unique-ID call-1")
    after = await RawSubscriber.connect(switch.port, f"event json CUSTOM {play} DTMF")
    custom = await RawSubscriber.connect(switch.port, "event json CUSTOM")
    client = EslClient(settings(switch.port))
    client.start()
    try:
        assert await client.wait_connected(5)
        received: list[EslEvent] = []
        client.watch("call-1", received.append)
        await until(lambda: switch.filtering("Unique-ID", "call-1") == 2, within_s=10)  # `named`'s and ours
        switch.press("call-2", "5")
        switch.press("call-1", "1", duration_ms=250)
        switch.fire(play_event("call-1"))
        (key, played) = await named.events()
        assert key.name == "DTMF" and key.unique_id == "call-1"
        assert key.headers["DTMF-Digit"] == "1" and key.headers["DTMF-Duration"] == "2000"
        assert played.subclass == play
        assert [e.subclass for e in await after.events()] == [play]  # "DTMF" was taken for a subclass
        assert await custom.events() == []
        await until(lambda: len(received) >= 2, within_s=10)
        assert [(e.name, e.headers.get("DTMF-Digit")) for e in received] == [("DTMF", "1"), ("CUSTOM", None)]
        with pytest.raises(KeyError):
            switch.press("no-such-call", "1")
    finally:
        for subscriber in (named, after, custom):
            subscriber.close()
        await client.close()


def test_placeholder_filter_is_a_uuid_no_call_has() -> None:
    assert PLACEHOLDER_FILTER == "00000000-0000-0000-0000-000000000000"
