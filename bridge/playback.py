"""Outbound audio for one call: a timeline of what the caller hears, paced sending, and barge-in.

Every queued segment (a sentence, or a chunk of a realtime model's audio) gets its place on an absolute
timeline when it is queued: it plays right after what is already queued, or now. Chunks are sent
`lead_ms` before their place on that timeline, sleeping toward the absolute instant, so a late event-loop
tick is caught up on the next chunk instead of pushing every later chunk back (per-chunk sleeps drift, and
under load every call's delay ratchets up). The same timeline tells, at a barge-in, how much of each
segment the caller actually heard.

Two ways FreeSWITCH plays it (`playback_mode` per domain): `module` (a playback build of mod_audio_stream
plays `streamAudio` chunks from its buffer; barge-in sends `stopAudio`) and `event` (the community build
writes each chunk to a file and fires `mod_audio_stream::play`; we run `uuid_broadcast`, and barge-in is
`uuid_break <uuid> all`). One message per segment in `event` mode: each becomes one file and one broadcast.
A call configured for `module` that gets a `play` event meets the community build: the session moves it to
`event` mode (`Playback.use`), and that event and every later one is broadcast, so nothing sent is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog

from bridge.protocol import EPOCH_KEY, stop_audio, stream_audio
from freeswitch.esl import EslClient, EslUnavailable
from freeswitch.esl_protocol import EslEvent
from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SEGMENT_RETENTION_S = 30.0
PLAY_EVENT = "mod_audio_stream::play"
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]{1,512}$")


class PlaybackTransport(Protocol):
    """How audio reaches the caller. `chunk_ms` None: send each segment whole, as soon as it is queued.
    `epoch` counts the barge-ins (`stop`): every message sent carries it."""

    chunk_ms: int | None
    epoch: int

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None: ...

    async def stop(self) -> None: ...


Send = Callable[[str], Awaitable[None]]


class ModuleTransport:
    """Playback builds of mod_audio_stream: they play `streamAudio` raw chunks from a buffer."""

    def __init__(self, send: Send, chunk_ms: int) -> None:
        self._send = send
        self.chunk_ms: int | None = chunk_ms
        self.epoch = 0

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        await self._send(stream_audio(pcm, sample_rate, self.epoch))

    async def stop(self) -> None:
        self.epoch += 1
        await self._send(stop_audio())


class EventTransport:
    """The community build: it only writes our audio to files and says so in `mod_audio_stream::play`
    events; we answer each with `uuid_broadcast` (FreeSWITCH queues broadcasts, so they play in order).

    A play event can arrive after the barge-in's `uuid_break` (the module is slower than our ESL command):
    its `voiceai_epoch` is then older than ours, and its file is not played but deleted."""

    chunk_ms: int | None = None

    def __init__(self, send: Send, esl: EslClient | None, call_uuid: str, on_failure: Callable[[str], None]) -> None:
        self._send = send
        self._esl = esl
        self._uuid = call_uuid
        self._on_failure = on_failure
        self._pending: set[asyncio.Task[None]] = set()
        self.epoch = 0

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        await self._send(stream_audio(pcm, sample_rate, self.epoch))

    def attach(self, esl: EslClient) -> None:
        self._esl = esl

    def on_event(self, event: EslEvent) -> None:
        if event.subclass != PLAY_EVENT or event.unique_id != self._uuid:
            return
        body = event.json_body()
        path = body.get("file") if isinstance(body, dict) else None
        if not isinstance(path, str) or not _SAFE_PATH.match(path) or ".." in path:
            log.warning("play_event_without_usable_file", body=event.body[:200])
            return
        assert isinstance(body, dict)
        epoch = body.get(EPOCH_KEY)
        if isinstance(epoch, int) and epoch < self.epoch:
            self._discard(path)
            return
        task = asyncio.create_task(self._command(f"uuid_broadcast {self._uuid} {path} aleg", "uuid_broadcast"))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _discard(self, path: str) -> None:
        """A file of audio a barge-in cut: the module deletes it when the stream ends; we do it now where we
        can reach it (the same host), and only a file of this call's (`<uuid>_<n>…`)."""
        log.info("stale_play_event_dropped", file=path)
        if os.path.basename(path).startswith(f"{self._uuid}_"):
            with contextlib.suppress(OSError):
                os.unlink(path)

    async def stop(self) -> None:
        self.epoch += 1  # before the break goes out: a play event from now on is judged by the new epoch
        await self._command(f"uuid_break {self._uuid} all", "uuid_break")

    async def _command(self, line: str, name: str) -> None:
        if self._esl is None:
            self._on_failure(name)
            return
        try:
            reply = await self._esl.api(line)
        except EslUnavailable as exc:
            log.warning("esl_command_failed", command=name, error=str(exc))
            self._on_failure(name)
            return
        if not reply.ok:
            log.warning("esl_command_refused", command=name, reply=reply.reply_text)

    async def close(self) -> None:
        await cancel_and_wait(*self._pending)


@dataclass
class PlaybackModes:
    """What the bridge's `/health` says of playback: calls by the mode they are served in, and how often a
    call configured for `module` met the community build (its `play` events) and went on in `event` mode."""

    calls: dict[str, int] = field(default_factory=lambda: {"module": 0, "event": 0})
    detected_event: int = 0
    last_detected_at: str | None = None

    def started(self, mode: str) -> None:
        self.calls[mode] += 1

    def detected(self) -> None:
        self.calls["module"] -= 1
        self.calls["event"] += 1
        self.detected_event += 1
        self.last_detected_at = datetime.now(UTC).isoformat(timespec="seconds")

    def wire(self) -> dict[str, object]:
        return {
            "calls": dict(self.calls),
            "detected_event": self.detected_event,
            "last_detected_at": self.last_detected_at,
        }


@dataclass
class _Segment:
    pcm: bytes
    text: str
    tag: str
    start: float
    end: float
    sent: int = 0  # bytes handed to the transport so far


@dataclass(frozen=True, slots=True)
class Interruption:
    """What a barge-in cut: per tag (a reply), the text heard and the text cut, and the audio played."""

    heard: dict[str, str] = field(default_factory=dict)
    cut: dict[str, str] = field(default_factory=dict)
    played_ms: dict[str, int] = field(default_factory=dict)


def split_heard(text: str, fraction: float) -> tuple[str, str]:
    """The words of `text` heard when `fraction` of its audio has played, and the rest."""
    words = text.split()
    count = round(len(words) * fraction)
    return " ".join(words[:count]), " ".join(words[count:])


class Playback:
    def __init__(
        self,
        transport: PlaybackTransport,
        sample_rate: int,
        lead_ms: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._transport = transport
        self._rate = sample_rate
        self._lead = lead_ms / 1000
        self._clock = clock or asyncio.get_running_loop().time
        self._queue: deque[_Segment] = deque()
        self._segments: deque[_Segment] = deque()
        self._end = 0.0
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._sender(), name="playback")
        self.failed: BaseException | None = None

    @property
    def sample_rate(self) -> int:
        return self._rate

    def use(self, transport: PlaybackTransport) -> None:
        """Reach the caller another way from now on (the community build detected mid-call): what was sent
        stays sent, the rest goes the new way, in the same epoch."""
        transport.epoch = self._transport.epoch
        self._transport = transport

    @property
    def speaking(self) -> bool:
        """Audio is queued or still playing on the caller's side."""
        return self._clock() < self._end or bool(self._queue)

    @property
    def ends_at(self) -> float:
        return self._end

    def enqueue(self, pcm: bytes, text: str = "", tag: str = "") -> None:
        """Queue audio at the call's rate; it plays after what is already queued."""
        if not pcm:
            return
        now = self._clock()
        start = max(now, self._end)
        self._end = start + len(pcm) / 2 / self._rate
        segment = _Segment(pcm, text, tag, start, self._end)
        self._queue.append(segment)
        segments = self._segments  # time-ordered: what a barge-in may still need is at the end
        while segments and (
            segments[0].end < now - SEGMENT_RETENTION_S or (segments[0].tag != tag and segments[0].end <= now)
        ):
            segments.popleft()
        last = segments[-1] if segments else None
        if last is not None and not text and not last.text and last.tag == tag and last.end == start:
            last.end = self._end  # a realtime model's stream of chunks: one span, not thousands of GC'd objects
        else:
            segments.append(segment)
        self._wakeup.set()

    async def drained(self) -> None:
        """Returns once everything queued has played on the caller's side."""
        while True:  # the end moves when more audio is queued meanwhile
            remaining = self._end - self._clock()
            if remaining <= 0 and not self._queue:
                return
            await asyncio.sleep(max(0.005, remaining))

    async def interrupt(self) -> Interruption:
        """Barge-in: stop what plays now, drop what is queued, and say what the caller heard."""
        now = self._clock()
        was_playing = self.speaking
        self._queue.clear()
        heard: dict[str, list[str]] = {}
        cut: dict[str, list[str]] = {}
        played: dict[str, float] = {}
        for segment in self._segments:
            duration = segment.end - segment.start
            fraction = min(1.0, max(0.0, (now - segment.start) / duration)) if duration > 0 else 1.0
            played[segment.tag] = played.get(segment.tag, 0.0) + fraction * duration
            if segment.text:
                said, rest = split_heard(segment.text, fraction)
                if said:
                    heard.setdefault(segment.tag, []).append(said)
                if rest:
                    cut.setdefault(segment.tag, []).append(rest)
        self._segments.clear()
        self._end = min(self._end, now)
        if was_playing:
            await self._transport.stop()
        return Interruption(
            {tag: " ".join(parts) for tag, parts in heard.items()},
            {tag: " ".join(parts) for tag, parts in cut.items()},
            {tag: round(seconds * 1000) for tag, seconds in played.items()},
        )

    async def _sender(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                segment = self._queue[0]
                chunk_ms = self._transport.chunk_ms
                size = len(segment.pcm) if chunk_ms is None else 2 * (self._rate * chunk_ms // 1000)
                if chunk_ms is not None:
                    play_at = segment.start + segment.sent / 2 / self._rate
                    delay = play_at - self._lead - self._clock()
                    if delay > 0:
                        await asyncio.sleep(delay)
                        if not self._queue or self._queue[0] is not segment:
                            continue  # interrupted while waiting
                chunk = segment.pcm[segment.sent : segment.sent + size]
                segment.sent += len(chunk)
                if segment.sent >= len(segment.pcm):
                    self._queue.popleft()
                    segment.pcm = b""  # sent: only its place on the timeline is still needed
                await self._transport.send_audio(chunk, self._rate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away: the session notices and ends the call
            self.failed = exc
            self._queue.clear()

    async def close(self) -> None:
        await cancel_and_wait(self._task)
