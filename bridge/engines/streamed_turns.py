"""A streaming STT (Deepgram) inside the pipeline: the caller's frames go to the provider as they arrive, at
the call's rate (linear16 or µ-law, no resampling), and the caller's turn ends when the provider says so
(`speech_final` / `UtteranceEnd`), with the transcript already made.

Audio is sent only while the caller may be speaking — from half a second before our VAD first hears speech
until `hold_s` after it last did (long enough for the provider's own endpointing and `UtteranceEnd`); in
between the stream is kept open with `KeepAlive` (the adapter sends one every few seconds of silence), so
silence is not billed as audio. Barge-in stays with our VAD, which confirms speech locally in ~30–90 ms; the
provider's `SpeechStarted` would come a network round trip later and fires on any noise.

`feed` never waits: frames go on a queue that a sender task drains. A failed stream (an error, a dropped
socket, a deadline) ends `run` with `ProviderFailed`; the pipeline then goes on with its VAD and Whisper.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

from secretary.errors import ProviderFailed
from secretary.speech.streaming import EndOfUtterance, StreamingSpeechToText, SttStream
from secretary.tasks import cancel_and_wait

PRE_ROLL_S = 0.5
QUEUE_LIMIT_S = 10.0  # frames waiting for a slow socket; beyond this the stream is failing


class StreamedTurns:
    def __init__(
        self,
        stt: StreamingSpeechToText,
        sample_rate: int,
        language: str,
        hints: Sequence[str],
        hold_s: float,
    ) -> None:
        self.provider = stt.name
        self.stt = stt
        self._rate = sample_rate
        self._language = language
        self._hints = list(hints)
        self._hold_s = hold_s
        self._stream: SttStream | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._queued = 0
        self._pre_roll: deque[bytes] = deque()
        self._pre_roll_bytes = 0
        self._open_until = -1.0  # stream position (s) until which audio is sent
        self._position = 0.0
        self.sent_s = 0.0
        self.failed = False

    async def open(self) -> None:
        self._stream = await self.stt.open(self._rate, self._language, self._hints)

    def feed(self, pcm: bytes, speech: bool) -> None:
        """One frame, and whether our VAD thinks the caller may be speaking now."""
        if self.failed or self._stream is None:
            return
        self._position += len(pcm) / 2 / self._rate
        if speech:
            if self._position > self._open_until:  # the gate opens: send what came just before, too
                for frame in self._pre_roll:
                    self._send(frame)
            self._pre_roll.clear()
            self._pre_roll_bytes = 0
            self._open_until = self._position + self._hold_s
        if self._position <= self._open_until:
            self._send(pcm)
            return
        self._pre_roll.append(pcm)
        self._pre_roll_bytes += len(pcm)
        while self._pre_roll_bytes > 2 * self._rate * PRE_ROLL_S:
            self._pre_roll_bytes -= len(self._pre_roll.popleft())

    def _send(self, pcm: bytes) -> None:
        if self._queued > 2 * self._rate * QUEUE_LIMIT_S:
            return  # the sender is stuck: it fails on its own deadline
        self._queued += len(pcm)
        self._outbox.put_nowait(pcm)

    async def run(self, on_utterance: Callable[[str], Awaitable[None]]) -> None:
        """Sends audio and hands every finished utterance's text to `on_utterance`, until the stream fails
        (raises `ProviderFailed`) or is closed."""
        stream = self._stream
        assert stream is not None

        async def read() -> None:
            async for event in stream.events():
                if isinstance(event, EndOfUtterance) and event.text.strip():
                    await on_utterance(event.text.strip())
            raise ProviderFailed(f"{self.provider} ended the stream")

        tasks = {
            asyncio.create_task(self._sender(stream), name="stt-sender"),
            asyncio.create_task(read(), name="stt-reader"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            raise ProviderFailed(f"{self.provider} stream stopped")
        except ProviderFailed:
            self.failed = True
            raise
        finally:
            await cancel_and_wait(*tasks)

    async def _sender(self, stream: SttStream) -> None:
        while True:
            pcm = await self._outbox.get()
            self._queued -= len(pcm)
            await stream.send(pcm)
            self.sent_s += len(pcm) / 2 / self._rate

    async def close(self) -> None:
        self.failed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()
