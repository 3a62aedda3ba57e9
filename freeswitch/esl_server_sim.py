"""A FreeSWITCH event socket as FreeSWITCH serves it, for tests and `voiceai call --realtime`.

It authenticates, answers `api` commands on the channels the stream simulator registered (`uuid_transfer`,
`uuid_kill`, `uuid_broadcast`, `uuid_break`) and mod_memcache's `memcache delete <key>` (on `memcache`, the keys
FusionPBX would have cached), records every command it got, and fires events (JSON) to the
connections whose subscriptions and `filter`s match, as mod_event_socket does: `event json DTMF CUSTOM a::b`
subscribes to the event DTMF and the CUSTOM subclass `a::b` (every word after CUSTOM is a subclass; CUSTOM
alone delivers no custom event; `ALL` delivers everything). `press` is a caller pressing a key on a channel:
the `DTMF` event. It is also the simulated switch's event bus: in-process `listeners` (a Lua
`freeswitch.EventConsumer`) see every event fired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from freeswitch.esl_protocol import EslCommand, EslCommandParser, EslEvent, EslProtocolError, event_json, message


class ChannelHooks(Protocol):
    """What ESL commands do to a simulated call."""

    def play_file(self, path: str) -> bool: ...

    def break_all(self) -> None: ...

    def hangup(self, cause: str) -> None: ...

    def transfer(self, extension: str, context: str) -> None: ...

    def getvar(self, name: str) -> str | None: ...


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    authenticated: bool = False
    names: set[str] = field(default_factory=set)
    subclasses: set[str] = field(default_factory=set)
    all_events: bool = False
    filters: set[tuple[str, str]] = field(default_factory=set)

    def subscribe(self, words: list[str]) -> None:
        custom = False
        for word in words:
            if custom:
                self.subclasses.add(word)
            elif word == "ALL":
                self.all_events = True
            elif word == "CUSTOM":
                custom = True
            else:
                self.names.add(word)

    def wants(self, event: EslEvent) -> bool:
        if not self.authenticated:
            return False
        subscribed = event.subclass in self.subclasses if event.name == "CUSTOM" else event.name in self.names
        if not (self.all_events or subscribed):
            return False
        return not self.filters or any(event.headers.get(k) == v for k, v in self.filters)


class EslServerSimulator:
    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.commands: list[str] = []  # every api command line, in order of arrival
        self.channels: dict[str, ChannelHooks] = {}
        self.memcache: dict[str, str] = {}  # mod_memcache's entries (FusionPBX's `dialplan:<context>`)
        self.reply_delay_s = 0.0  # fault injection: answer api commands this late
        self._clients: set[_Client] = set()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[EslEvent], None]] = []
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stops listening and drops every connection, as a FreeSWITCH restart would."""
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def register(self, call_uuid: str, channel: ChannelHooks) -> None:
        self.channels[call_uuid] = channel

    def unregister(self, call_uuid: str) -> None:
        self.channels.pop(call_uuid, None)

    def filtering(self, header: str, value: str) -> int:
        """How many connections have `filter <header> <value>` in place: what a test waits for instead of
        sleeping after a client subscribes or unsubscribes."""
        return sum((header, value) in client.filters for client in self._clients)

    def commands_for(self, verb: str) -> list[str]:
        return [c for c in self.commands if c.split(" ", 1)[0] == verb]

    def listen(self, listener: Callable[[EslEvent], None]) -> Callable[[], None]:
        """Every event fired from now on also goes to `listener` (in the loop's thread); returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def fire(self, event: EslEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
        frame = event_json(event)
        for client in list(self._clients):
            if client.wants(event):
                client.writer.write(frame)

    def press(self, call_uuid: str, digit: str, duration_ms: int = 100) -> None:
        """The caller presses a key on a registered channel: FreeSWITCH fires `DTMF` with the channel's
        headers, `DTMF-Digit` and `DTMF-Duration` (in 8 kHz samples)."""
        if call_uuid not in self.channels:
            raise KeyError(f"no simulated channel {call_uuid}")
        headers = {
            "Event-Name": "DTMF",
            "Unique-ID": call_uuid,
            "Channel-Call-UUID": call_uuid,
            "DTMF-Digit": digit,
            "DTMF-Duration": str(duration_ms * 8),
            "DTMF-Source": "RTP",
        }
        self.fire(EslEvent(headers))

    def send_raw(self, data: bytes) -> None:
        """Fault injection: bytes to every authenticated connection as they are, whatever its filters."""
        for client in list(self._clients):
            if client.authenticated:
                client.writer.write(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        client = _Client(writer)
        self._clients.add(client)
        parser = EslCommandParser()
        try:
            writer.write(message({"Content-Type": "auth/request"}))
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for cmd in parser.feed(data):
                    if not await self._handle(client, cmd):
                        return
        except (EslProtocolError, ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(client)
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    def _reply(self, client: _Client, text: str) -> None:
        client.writer.write(message({"Content-Type": "command/reply", "Reply-Text": text}))

    async def _handle(self, client: _Client, cmd: EslCommand) -> bool:
        verb, argument = cmd.verb, cmd.argument
        if not client.authenticated:
            if verb == "auth" and argument == self.password:
                client.authenticated = True
                self._reply(client, "+OK accepted")
                return True
            self._reply(client, "-ERR invalid")
            client.writer.write(message({"Content-Type": "text/disconnect-notice"}))
            return False
        if verb == "api":
            self.commands.append(argument)
            if self.reply_delay_s:
                await asyncio.sleep(self.reply_delay_s)
            body = self._api(argument).encode()
            client.writer.write(message({"Content-Type": "api/response"}, body))
        elif verb == "event":
            words = argument.split()
            if words[:1] in (["json"], ["plain"]):
                words = words[1:]
            client.subscribe(words)
            self._reply(client, "+OK event listener enabled json")
        elif verb == "filter":
            words = argument.split(" ", 2)
            if words[0] == "delete" and len(words) == 3:
                client.filters.discard((words[1], words[2]))
                self._reply(client, f"+OK filter deleted. [{words[1]}]=[{words[2]}]")
            elif len(words) >= 2:
                value = argument.split(" ", 1)[1]
                client.filters.add((words[0], value))
                self._reply(client, f"+OK filter added. [{words[0]}]=[{value}]")
            else:
                self._reply(client, "-ERR invalid filter")
        elif verb == "exit":
            self._reply(client, "+OK bye")
            client.writer.write(message({"Content-Type": "text/disconnect-notice"}))
            return False
        else:
            self._reply(client, "-ERR command not found")
        return True

    def _api(self, line: str) -> str:
        words = line.split()
        if not words:
            return "-ERR no command"
        name, args = words[0], words[1:]
        if name == "status":
            return "UP 0 years, 0 days (simulated)\nFreeSWITCH (simulator) is ready\n"
        if name == "memcache" and len(args) == 2 and args[0] == "delete":
            return "+OK\n" if self.memcache.pop(args[1], None) is not None else "-ERR NOT FOUND\n"
        if name not in ("uuid_transfer", "uuid_kill", "uuid_broadcast", "uuid_break", "uuid_getvar"):
            return f"-ERR {name} Command not found!\n"
        channel = self.channels.get(args[0]) if args else None
        if channel is None:
            return "-ERR No such channel!\n"
        if name == "uuid_transfer" and len(args) >= 2:
            context = args[3] if len(args) >= 4 and args[2] == "XML" else "default"
            channel.transfer(args[1], context)
            return "+OK\n"
        if name == "uuid_kill":
            channel.hangup(args[1] if len(args) > 1 else "NORMAL_CLEARING")
            return "+OK\n"
        if name == "uuid_broadcast" and len(args) >= 2:
            return "+OK Message queued\n" if channel.play_file(args[1]) else "-ERR file not found\n"
        if name == "uuid_break":
            channel.break_all()
            return "+OK\n"
        if name == "uuid_getvar" and len(args) >= 2:
            value = channel.getvar(args[1])
            return "_undef_" if value is None else value
        return f"-USAGE: {name}\n"
