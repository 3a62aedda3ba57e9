"""Deepgram streaming speech-to-text through the official `deepgram-sdk` (listen v1 WebSocket).

Audio goes out at the call's own rate as linear16 or µ-law (no resampling); Deepgram's endpointing
(`speech_final`) and `UtteranceEnd` end the caller's turn. While the caller is silent a `KeepAlive` goes out
every few seconds (Deepgram closes an idle stream after about 10 s); `CloseStream` flushes at the end.
The turn-based path uses the same stream: send the utterance, `CloseStream`, collect the final segments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
import websockets
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.listen.v1.types import (
    ListenV1Error,
    ListenV1Metadata,
    ListenV1Results,
    ListenV1SpeechStarted,
    ListenV1UtteranceEnd,
)

from secretary.deadlines import Deadlines, PacedStream
from secretary.errors import ProviderFailed
from secretary.speech.audio import Pcm, ulaw_encode
from secretary.speech.interfaces import Transcript
from secretary.speech.streaming import EndOfUtterance, FinalSegment, Interim, SpeechStarted, SttEvent
from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SEND_CHUNK_S = 0.1  # the turn-based path sends a recorded utterance in 100 ms pieces, as fast as it can
_END = object()
RESULT_DEADLINES = Deadlines(first_event_s=2.5, stall_s=1.5, total_s=10.0)


class DeepgramFailed(ProviderFailed):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DeepgramStt:
    """Implements both `StreamingSpeechToText` (`open`) and `SpeechToText` (`transcribe`)."""

    name = "deepgram"

    def __init__(
        self,
        client: AsyncDeepgramClient,
        *,
        model: str = "nova-3",
        encoding: str = "linear16",
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        keepalive_s: float = 4.0,
        smart_format: bool = True,
        connect_timeout_s: float = 3.0,
        result_deadlines: Deadlines = RESULT_DEADLINES,
    ) -> None:
        if encoding not in ("linear16", "mulaw"):
            raise ValueError(f"Deepgram encoding must be linear16 or mulaw, not {encoding!r}")
        self._client = client
        self._model = model
        self._encoding = encoding
        self._endpointing_ms = endpointing_ms
        self._utterance_end_ms = utterance_end_ms
        self._keepalive_s = keepalive_s
        self._smart_format = smart_format
        self._connect_timeout_s = connect_timeout_s
        self._deadlines = result_deadlines

    @property
    def hold_s(self) -> float:
        """How long after the caller's last sound audio must still flow for Deepgram to end the turn."""
        return (self._endpointing_ms + self._utterance_end_ms) / 1000 + 0.3

    async def open(self, sample_rate: int, language: str, hints: Sequence[str] = ()) -> DeepgramStream:
        params: dict[str, Any] = {
            "model": self._model,
            "encoding": self._encoding,
            "sample_rate": sample_rate,
            "channels": 1,
            "language": language,
            "interim_results": True,
            "endpointing": self._endpointing_ms,
            "utterance_end_ms": self._utterance_end_ms,
            "vad_events": True,
            "smart_format": self._smart_format,
        }
        if hints and self._model.startswith("nova-3"):
            params["keyterm"] = list(dict.fromkeys(hints))[:50]
        elif hints:  # earlier models take single words: the names' own, not abbreviated titles ("Dr.", "Mrs.")
            words = (w.strip(",") for hint in hints for w in hint.split() if not w.endswith("."))
            params["keywords"] = [w for w in dict.fromkeys(words) if len(w) > 2][:50]
        stream = DeepgramStream(sample_rate, self._encoding, self._keepalive_s)
        await stream.start(self._client, params, self._connect_timeout_s)
        return stream

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript:
        stream = await self.open(audio.sample_rate, language, hints)
        try:
            step = max(2, int(audio.sample_rate * SEND_CHUNK_S) * 2)
            for offset in range(0, len(audio.data), step):
                await stream.send(audio.data[offset : offset + step])
            await stream.finish()
            segments: list[str] = []
            paced = PacedStream(stream.events(), self._deadlines, "Deepgram")
            try:
                while True:
                    try:
                        event = await paced.next()
                    except StopAsyncIteration:
                        break
                    if isinstance(event, FinalSegment):
                        segments.append(event.text)
            finally:
                await paced.aclose()
        finally:
            await stream.close()
        return Transcript(" ".join(segments).strip(), self.name, audio.duration_s)

    async def probe(self) -> None:
        """Open a stream and close it again: proves the endpoint and the key without sending audio."""
        stream = await self.open(16000, "en")
        try:
            await stream.finish()
            async for _event in stream.events():
                pass
        finally:
            await stream.close()


class DeepgramStream:
    """One open listen socket. A reader task turns Deepgram's messages into `SttEvent`s on a queue."""

    def __init__(self, sample_rate: int, encoding: str, keepalive_s: float) -> None:
        self.sample_rate = sample_rate
        self._encoding = encoding
        self._keepalive_s = keepalive_s
        self._stack = AsyncExitStack()
        self._socket: Any = None
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._segments: list[str] = []
        self._finishing = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sent = 0.0
        self.keepalives_sent = 0

    async def start(self, client: AsyncDeepgramClient, params: dict[str, Any], timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                self._socket = await self._stack.enter_async_context(client.listen.v1.connect(**params))
        except ApiError as exc:
            await self._stack.aclose()
            raise DeepgramFailed(f"Deepgram refused the stream (HTTP {exc.status_code})", exc.status_code) from None
        except TimeoutError:
            await self._stack.aclose()
            raise DeepgramFailed(f"Deepgram did not open the stream within {timeout_s:.1f}s") from None
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            await self._stack.aclose()
            raise DeepgramFailed(f"Deepgram is unreachable: {type(exc).__name__}") from None
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        self._tasks = [
            loop.create_task(self._read(), name="deepgram-reader"),
            loop.create_task(self._keep_alive(), name="deepgram-keepalive"),
        ]

    async def send(self, pcm: bytes) -> None:
        if self._closed or self._finishing:
            raise DeepgramFailed("the Deepgram stream is closed")
        data = ulaw_encode(pcm) if self._encoding == "mulaw" else pcm
        try:
            await self._socket.send_media(data)
        except websockets.exceptions.ConnectionClosed as exc:
            raise DeepgramFailed(f"Deepgram closed the stream (code {exc.rcvd.code if exc.rcvd else 1006})") from None
        self._last_sent = asyncio.get_running_loop().time()

    async def finish(self) -> None:
        if self._finishing or self._closed:
            return
        self._finishing = True
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            await self._socket.send_close_stream()

    async def events(self) -> AsyncIterator[SttEvent]:
        while True:
            item = await self._events.get()
            if item is _END:
                self._events.put_nowait(_END)  # later readers see the end too
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(item)
                raise item
            assert isinstance(item, SpeechStarted | Interim | FinalSegment | EndOfUtterance)
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await cancel_and_wait(*self._tasks)
        with contextlib.suppress(Exception):
            await self._stack.aclose()

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._finishing:
            await asyncio.sleep(max(0.05, self._last_sent + self._keepalive_s - loop.time()))
            if self._finishing or loop.time() - self._last_sent < self._keepalive_s:
                continue
            try:
                await self._socket.send_keep_alive()
            except websockets.exceptions.ConnectionClosed:
                return
            self._last_sent = loop.time()
            self.keepalives_sent += 1

    async def _read(self) -> None:
        metadata = False
        try:
            while True:
                try:
                    message = await self._socket.recv()
                except json.JSONDecodeError:
                    raise DeepgramFailed("Deepgram sent a malformed message") from None
                metadata = metadata or isinstance(message, ListenV1Metadata)
                self._dispatch(message)
        except websockets.exceptions.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            if self._finishing and (metadata or code == 1000):
                self._end_utterance()
                self._events.put_nowait(_END)
            else:
                reason = exc.rcvd.reason if exc.rcvd else ""
                self._events.put_nowait(DeepgramFailed(f"Deepgram closed the stream (code {code} {reason})".strip()))
        except DeepgramFailed as exc:
            self._events.put_nowait(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._events.put_nowait(DeepgramFailed(f"Deepgram stream failed: {type(exc).__name__}"))

    def _dispatch(self, message: object) -> None:
        if isinstance(message, ListenV1Results):
            alternatives = message.channel.alternatives
            text = alternatives[0].transcript.strip() if alternatives else ""
            if message.is_final:
                if text:
                    self._segments.append(text)
                    self._events.put_nowait(FinalSegment(text))
                if message.speech_final:
                    self._end_utterance()
            elif text:
                self._events.put_nowait(Interim(text))
        elif isinstance(message, ListenV1UtteranceEnd):
            self._end_utterance()
        elif isinstance(message, ListenV1SpeechStarted):
            self._events.put_nowait(SpeechStarted(message.timestamp))
        elif isinstance(message, ListenV1Error):
            raise DeepgramFailed(f"Deepgram error: {message.variant}: {message.description}")

    def _end_utterance(self) -> None:
        if self._segments:
            self._events.put_nowait(EndOfUtterance(" ".join(self._segments)))
            self._segments = []
