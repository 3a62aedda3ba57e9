"""A FreeSWITCH call with `mod_audio_stream`, simulated: the client side of the bridge's protocol.

It connects as the module does (URL path, `STREAM_EXTRA_HEADERS`, a metadata text frame), then sends the
caller's audio as L16 frames paced on an absolute 20 ms clock (batched like `STREAM_BUFFER_SIZE`), silence
when the caller says nothing. What the bridge sends back plays into the caller's ear one 20 ms tick at a
time, so `heard()` is what the caller heard with its real timing:

- `module` mode (a playback build): `streamAudio` chunks go into a playback buffer; `stopAudio` empties it.
- `event` mode (the community build): each chunk is written to a file and announced as the event
  `mod_audio_stream::play` on the simulated ESL server (its body: `data` without the audio, plus `file`;
  `play_delay_ms` makes the module that much slower to say so); `uuid_broadcast` plays it, its sound starting
  `BROADCAST_START_MS` later (measured); `uuid_break` stops it and the broadcasts still to start. `stopAudio`,
  like any other text, becomes `mod_audio_stream::json`.

`press("1002#")` presses keys on the channel: each a `DTMF` event on the simulated ESL server.

Media time (`*_ms`) counts 20 ms ticks from the start of the stream, the timeline the caller lives in.

Like the module (PROTOCOLS.md §0), `start()` returns at once and connects in the background: a refused or
failed connection fires `mod_audio_stream::error` (`{"status":"error","message":{"code":6,"error":…}}`), a
server that closes the socket fires `mod_audio_stream::disconnect` with its close code and reason, and any
text from the server other than `streamAudio`/`stopAudio` fires `mod_audio_stream::json`. A stream the Lua
simulator starts (`uuid_audio_stream`) is `driven`: media flows only while the session reads it
(`session:sleep`), as FreeSWITCH feeds the media bug only from the session's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Origin

from bridge.protocol import OtherText, StopAudio, StreamAudio, parse_server_message
from freeswitch.esl_protocol import EslEvent
from freeswitch.esl_server_sim import EslServerSimulator
from secretary.speech.audio import Pcm, StreamResampler, wav_bytes
from secretary.tasks import cancel_and_wait

FRAME_MS = 20
SPEECH_LEVEL = 500  # |sample| above this counts as sound when looking for onsets in the timelines
CONNECT_FAILED = 6  # measured: a refused connection is error code 6 (the other codes below are not measured)
HANDSHAKE_FAILED = 7
NORMAL_CLOSURE = (1000, "Normal closure")  # how the module closes on `stop` and on a caller hang-up
BROADCAST_START_MS = 200  # measured: from a play event to the sound starting after its uuid_broadcast


@dataclass(frozen=True, slots=True)
class Received:
    at_ms: int
    message: StreamAudio | StopAudio | OtherText


class SimulatedCall:
    def __init__(
        self,
        url: str,
        domain_uuid: str,
        call_uuid: str | None = None,
        *,
        sample_rate: int = 8000,
        token: str | None = None,
        metadata: dict[str, Any] | str | None = None,
        send_metadata: bool = True,
        mode: Literal["module", "event"] = "module",
        switch: EslServerSimulator | None = None,
        buffer_ms: int = FRAME_MS,
        echo_db: float | None = None,
        temp_dir: Path | None = None,
        query: str = "",
        channel_domain: str | None = None,
        play_delay_ms: int = 0,
        stream_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        as_channel: bool = True,
        driven: bool = False,
    ) -> None:
        """`stream_url`: the whole URL as `uuid_audio_stream` got it (else `url` + `/stream/{domain}/{call}`);
        `headers`: what `STREAM_EXTRA_HEADERS` adds (else the bearer `token`); `as_channel`: the stream stands
        for the whole channel on the ESL server (False when a Lua-simulated session is the channel);
        `driven`: media flows only through `advance()`."""
        if mode == "event" and (switch is None or temp_dir is None):
            raise ValueError("event mode needs the ESL server simulator and a temp_dir for the audio files")
        self.url = url.rstrip("/")
        self.domain_uuid = domain_uuid
        self.call_uuid = call_uuid or str(uuid.uuid4())
        self.rate = sample_rate
        self.mode = mode
        self._token = token
        self._metadata = metadata
        self._send_metadata = send_metadata
        self._switch = switch
        self._batch = max(1, buffer_ms // FRAME_MS)
        self._echo = None if echo_db is None else 10 ** (echo_db / 20)
        self._temp_dir = temp_dir
        self._query = query
        self._play_delay_s = play_delay_ms / 1000
        self._late_plays: set[asyncio.TimerHandle] = set()
        self.announced: dict[str, dict[str, Any]] = {}  # event mode: each file written, and its play event's body
        self._stream_url = stream_url
        self._headers = dict(headers) if headers is not None else None
        self._as_channel = as_channel
        self._driven = driven
        self._credit = 0  # driven: media ticks the session has asked for and not yet had
        self._credit_given = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.error: dict[str, Any] | None = None  # the `mod_audio_stream::error` body, when it failed
        self.variables = {"domain_uuid": channel_domain or domain_uuid, "uuid": self.call_uuid}
        self._frame_bytes = 2 * sample_rate * FRAME_MS // 1000
        self._say: deque[bytes] = deque()
        self._playback = bytearray()
        self._broadcasts: deque[tuple[int, bytes]] = deque()  # uuid_broadcast: the media tick it starts at, audio
        self._heard = bytearray()
        self._sent = bytearray()
        self._tick = 0
        self._files = 0
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._hung_up = asyncio.Event()
        self.received: list[Received] = []
        self.stops: list[int] = []  # media ms at which playback was stopped (stopAudio / uuid_break)
        self.transfers: list[tuple[str, str]] = []
        self.hangup_cause: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        self._ticked = asyncio.Condition()  # notified every 20 ms tick and when the stream closes

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> SimulatedCall:
        """Starts connecting, as the module does: returns at once; see `wait_connected()` and `error`."""
        if self._switch is not None and self._as_channel:
            self._switch.register(self.call_uuid, self)
        self._connecting = asyncio.create_task(self._connect(), name="sim-connect")
        return self

    async def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """True once the stream is open; False when it failed or closed first."""
        async with asyncio.timeout(timeout_s), self._ticked:
            await self._ticked.wait_for(lambda: self.connected.is_set() or self.closed.is_set())
        return self.connected.is_set()

    async def _connect(self) -> None:
        headers = self._headers
        if headers is None:
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        target = self._stream_url or (
            f"{self.url}/stream/{self.domain_uuid}/{self.call_uuid}" + (f"?{self._query}" if self._query else "")
        )
        try:
            # The module's handshake (§0): Host, Upgrade, Key, Version 13 and `Origin: http://host:port`; no
            # subprotocol, no compression offer, no User-Agent, no proxy.
            self._ws = await connect(
                target,
                origin=_origin(target),
                additional_headers=headers,
                max_size=None,
                compression=None,
                user_agent_header=None,
                proxy=None,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            await self._failed(*_connect_error(exc))
            return
        self.connected.set()
        await self._notify()
        self._fire("mod_audio_stream::connect", {"status": "connected"})
        if self._send_metadata:
            metadata = self._metadata
            if metadata is None:
                metadata = {"caller_id_number": "1000", "destination_number": "5000", "sample_rate": self.rate}
            with contextlib.suppress(ConnectionClosed):  # `_receive` reports the close
                await self._ws.send(metadata if isinstance(metadata, str) else json.dumps(metadata))
        self._tasks = [
            asyncio.create_task(self._media(), name="sim-media"),
            asyncio.create_task(self._receive(), name="sim-receive"),
        ]

    async def _failed(self, code: int, text: str) -> None:
        self.error = {"status": "error", "message": {"code": code, "error": text}}
        self._fire("mod_audio_stream::error", self.error)
        self._hung_up.set()
        self.closed.set()
        await self._notify()

    async def __aenter__(self) -> SimulatedCall:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.hang_up()

    async def hang_up(self, code: int = NORMAL_CLOSURE[0], reason: str = NORMAL_CLOSURE[1]) -> None:
        """The caller hangs up (or `uuid_audio_stream stop`): the module closes the stream."""
        self._hung_up.set()
        await cancel_and_wait(self._connecting)
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.close(code, reason)
        for error in await cancel_and_wait(*self._tasks):
            if not isinstance(error, ConnectionClosed | OSError):
                raise error
        for late in self._late_plays:
            late.cancel()
        self.closed.set()
        if self._switch is not None and self._as_channel:
            self._switch.unregister(self.call_uuid)

    async def stop(self, text: str | None = None) -> None:
        """`uuid_audio_stream <uuid> stop [text]`: the text as a last frame, then the module's close."""
        if text and self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.send(text)
        await self.hang_up()

    async def send_text(self, text: str) -> None:
        """`uuid_audio_stream <uuid> send_text <text>`: one text frame."""
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self._ws.send(text)

    # -- the caller ----------------------------------------------------------------------------------------

    def say(self, pcm: Pcm) -> int:
        """Queue caller speech after what is already queued; returns the media ms it will start at."""
        if pcm.sample_rate != self.rate:
            pcm = pcm.resampled(self.rate)
        start = self.media_ms + FRAME_MS * len(self._say)
        data = pcm.data
        for i in range(0, len(data), self._frame_bytes):
            self._say.append(data[i : i + self._frame_bytes].ljust(self._frame_bytes, b"\0"))
        return start

    async def press(self, keys: str, gap_ms: int = 200) -> int:
        """The caller presses `keys`, one every `gap_ms` of media time; returns the media ms of the first."""
        assert self._switch is not None, "keys need the ESL server simulator"
        first = self.media_ms
        for i, key in enumerate(keys):
            if i:
                await self.wait_until(self.media_ms + gap_ms)
            self._switch.press(self.call_uuid, key)
        return first

    @property
    def media_ms(self) -> int:
        return self._tick * FRAME_MS

    @property
    def playing(self) -> bool:
        return bool(self._playback)

    def heard(self) -> Pcm:
        return Pcm(bytes(self._heard), self.rate)

    def sent(self) -> Pcm:
        return Pcm(bytes(self._sent), self.rate)

    def write_heard(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav_bytes(self.heard()))
        return path

    def json_messages(self) -> list[dict[str, Any]]:
        out = []
        for item in self.received:
            if isinstance(item.message, OtherText):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(item.message.text))
        return out

    # -- waiting -------------------------------------------------------------------------------------------

    async def _until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Waits, tick by tick, until `condition()` holds or the stream closes."""
        async with asyncio.timeout(timeout_s), self._ticked:
            await self._ticked.wait_for(lambda: condition() or self.closed.is_set())

    async def wait_until(self, media_ms: int, timeout_s: float = 30.0) -> None:
        await self._until(lambda: self.media_ms >= media_ms, timeout_s)

    async def secretary_speaks(self, after_ms: int = 0, timeout_s: float = 30.0) -> int:
        """Waits until the caller hears audio at or after `after_ms`; returns the media ms it started."""
        scanned = [after_ms]
        found: list[int] = []

        def spoke() -> bool:
            onset = self._onset_since(scanned[0])
            if onset is not None:
                found.append(onset)
            scanned[0] = max(after_ms, self.media_ms - FRAME_MS)
            return bool(found)

        await self._until(spoke, timeout_s)
        if not found:
            raise ConnectionError(f"stream closed ({self.close_code}) before the secretary spoke")
        return found[0]

    def _onset_since(self, media_ms: int) -> int | None:
        first = media_ms // FRAME_MS
        view = memoryview(self._heard)[first * self._frame_bytes :]
        try:
            samples = np.frombuffer(view, dtype="<i2")
            loud = np.flatnonzero(np.abs(samples) > SPEECH_LEVEL)
            return None if loud.size == 0 else (first + int(loud[0]) * 2 // self._frame_bytes) * FRAME_MS
        finally:
            del samples
            view.release()

    async def audio_received(self, after_ms: int = 0, timeout_s: float = 30.0) -> int:
        """Waits until the bridge has sent audio (`streamAudio`) at or after `after_ms`, heard or not yet;
        returns the media ms it arrived."""
        found: list[int] = []

        def arrived() -> bool:
            found[:] = [r.at_ms for r in self.received if isinstance(r.message, StreamAudio) and r.at_ms >= after_ms]
            return bool(found)

        await self._until(arrived, timeout_s)
        if not found:
            raise ConnectionError(f"stream closed ({self.close_code}) before the bridge sent audio")
        return found[0]

    async def secretary_silent(self, quiet_ms: int = 700, timeout_s: float = 30.0) -> int:
        """Waits until nothing has played for `quiet_ms` (the secretary finished); returns the media ms."""
        quiet_since: list[int] = []

        def quiet() -> bool:
            if self.playing:
                quiet_since.clear()
            elif not quiet_since:
                quiet_since.append(self.media_ms)
            return bool(quiet_since) and self.media_ms - quiet_since[0] >= quiet_ms

        await self._until(quiet, timeout_s)
        return quiet_since[0] if quiet_since else self.media_ms

    async def advance(self, ms: int, timeout_s: float = 30.0) -> None:
        """A driven stream: the session reads `ms` of media (whole 20 ms frames), paced in real time; returns
        when they have flowed, or at once when the stream is not open."""
        if not self.connected.is_set() or self.closed.is_set():
            return
        self._credit += -(-ms // FRAME_MS)
        self._credit_given.set()
        await self._until(lambda: self._credit <= 0, timeout_s)

    async def wait_closed(self, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self.closed.wait()

    async def _notify(self) -> None:
        async with self._ticked:
            self._ticked.notify_all()

    # -- ESL hooks (the simulated channel) -----------------------------------------------------------------

    def play_file(self, path: str) -> bool:
        file = Path(path)
        if not file.is_file():
            return False
        self._broadcasts.append((self._tick + BROADCAST_START_MS // FRAME_MS, file.read_bytes()))
        return True

    def break_all(self) -> None:
        self._stop_playback()

    def hangup(self, cause: str) -> None:
        self.hangup_cause = cause
        task = asyncio.get_running_loop().create_task(self.hang_up())
        task.add_done_callback(lambda t: None)

    def transfer(self, extension: str, context: str) -> None:
        self.transfers.append((extension, context))

    def getvar(self, name: str) -> str | None:
        return self.variables.get(name)

    # -- internals -----------------------------------------------------------------------------------------

    def _stop_playback(self) -> None:
        self._playback.clear()
        self._broadcasts.clear()
        self.stops.append(self.media_ms)

    def _fire(self, subclass: str, body: dict[str, Any] | str) -> None:
        if self._switch is None:
            return
        headers = {
            "Event-Name": "CUSTOM",
            "Event-Subclass": subclass,
            "Unique-ID": self.call_uuid,
            "Channel-Call-UUID": self.call_uuid,
        }
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        self._switch.fire(EslEvent(headers, text))

    async def _media(self) -> None:
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        batch: list[bytes] = []
        silence = bytes(self._frame_bytes)
        size = self._frame_bytes
        while not self._hung_up.is_set():
            if self._driven and self._credit <= 0:
                self._credit_given.clear()
                await self._credit_given.wait()
                start = loop.time() - (self._tick - 1) * FRAME_MS / 1000  # the next frame is read 20 ms from now
                continue
            delay = start + self._tick * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            while self._broadcasts and self._broadcasts[0][0] <= self._tick:
                self._playback += self._broadcasts.popleft()[1]  # queued broadcasts play in order
            heard = bytes(self._playback[:size]).ljust(size, b"\0")
            del self._playback[:size]
            frame = self._say.popleft() if self._say else silence
            if self._echo is not None and heard != silence:
                mixed = np.frombuffer(frame, "<i2") + np.frombuffer(heard, "<i2") * self._echo
                frame = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
            self._heard += heard
            self._sent += frame
            self._tick += 1
            if self._driven:
                self._credit -= 1
            await self._notify()
            batch.append(frame)
            if len(batch) >= self._batch:
                try:
                    await self._ws.send(b"".join(batch))
                except ConnectionClosed:
                    return
                batch.clear()

    async def _receive(self) -> None:
        assert self._ws is not None
        resamplers: dict[int, StreamResampler] = {}
        try:
            async for raw in self._ws:
                if isinstance(raw, bytes):
                    continue  # some forks play binary frames; the module we simulate ignores them
                parsed = parse_server_message(raw)
                self.received.append(Received(self.media_ms, parsed))
                if isinstance(parsed, StreamAudio):
                    pcm = parsed.pcm
                    if parsed.sample_rate != self.rate:
                        resampler = resamplers.setdefault(
                            parsed.sample_rate, StreamResampler(parsed.sample_rate, self.rate)
                        )
                        pcm = resampler.process(pcm)
                    if self.mode == "module":
                        self._playback += pcm
                    else:
                        self._announce_file(pcm, parsed)
                elif isinstance(parsed, StopAudio) and self.mode == "module":
                    self._stop_playback()
                else:
                    self._fire("mod_audio_stream::json", raw)
        except ConnectionClosed:
            pass
        finally:
            ours = self._hung_up.is_set()
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason or ""
            self._hung_up.set()
            self._credit_given.set()
            if not ours:  # the server closed it (or the connection broke)
                message = {"code": self.close_code, "reason": self.close_reason}
                self._fire("mod_audio_stream::disconnect", {"status": "disconnected", "message": message})
            self.closed.set()
            await self._notify()

    def _announce_file(self, pcm: bytes, parsed: StreamAudio) -> None:
        assert self._temp_dir is not None
        suffix = f"r{self.rate // 1000}"
        path = self._temp_dir / f"{self.call_uuid}_{self._files}.tmp.{suffix}"
        self._files += 1
        path.write_bytes(pcm)
        body = {**parsed.data, "sampleRate": self.rate, "file": str(path)}
        self.announced[str(path)] = body
        if not self._play_delay_s:
            self._fire("mod_audio_stream::play", body)
            return
        late: asyncio.TimerHandle

        def fire() -> None:
            self._late_plays.discard(late)
            self._fire("mod_audio_stream::play", body)

        late = asyncio.get_running_loop().call_later(self._play_delay_s, fire)
        self._late_plays.add(late)


def _origin(url: str) -> Origin:
    """The Origin header the module sends: `http://host:port` of the stream's URL (measured with ws://)."""
    parsed = urlsplit(url)
    port = parsed.port or (443 if parsed.scheme == "wss" else 80)
    host = f"[{parsed.hostname}]" if parsed.hostname and ":" in parsed.hostname else parsed.hostname
    return Origin(f"http://{host}:{port}")


def _connect_error(exc: BaseException) -> tuple[int, str]:
    """The `mod_audio_stream::error` code and text for a connection that failed."""
    if isinstance(exc, ConnectionRefusedError):
        return CONNECT_FAILED, "Connection refused (system error 111)"
    if isinstance(exc, InvalidStatus):
        return HANDSHAKE_FAILED, f"Handshake failed (HTTP {exc.response.status_code})"
    if isinstance(exc, OSError):
        return CONNECT_FAILED, f"{exc.strerror or exc} (system error {exc.errno})"
    return HANDSHAKE_FAILED, f"Handshake failed ({type(exc).__name__})"


def sound_onset(pcm: Pcm, after_ms: int = 0) -> int | None:
    """Media ms of the first 20 ms frame at or after `after_ms` that holds sound."""
    frame = 2 * pcm.sample_rate * FRAME_MS // 1000
    first = after_ms // FRAME_MS
    samples = np.abs(np.frombuffer(pcm.data[first * frame :], dtype="<i2"))
    loud = np.nonzero(samples > SPEECH_LEVEL)[0]
    if loud.size == 0:
        return None
    return (first + int(loud[0]) * 2 // frame) * FRAME_MS


def sound_end(pcm: Pcm, after_ms: int = 0) -> int | None:
    """Media ms just after the last frame at or after `after_ms` that holds sound."""
    frame = 2 * pcm.sample_rate * FRAME_MS // 1000
    first = after_ms // FRAME_MS
    samples = np.abs(np.frombuffer(pcm.data[first * frame :], dtype="<i2"))
    loud = np.nonzero(samples > SPEECH_LEVEL)[0]
    if loud.size == 0:
        return None
    return (first + int(loud[-1]) * 2 // frame + 1) * FRAME_MS
