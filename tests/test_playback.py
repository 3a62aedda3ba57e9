"""The playback timeline: what a barge-in says was heard and cut, and chunking per playback mode."""

from __future__ import annotations

import asyncio

from bridge.playback import Playback
from bridge.protocol import StreamAudio, parse_server_message, stop_audio, stream_audio


class Sink:
    """A transport that keeps what it was asked to send (the simulator covers the real sockets)."""

    def __init__(self, chunk_ms: int | None) -> None:
        self.chunk_ms = chunk_ms
        self.epoch = 0
        self.sent: list[str] = []

    async def send_audio(self, pcm: bytes, sample_rate: int) -> None:
        self.sent.append(stream_audio(pcm, sample_rate))

    async def stop(self) -> None:
        self.sent.append(stop_audio())


def seconds(value: float, rate: int = 8000) -> bytes:
    return b"\x01\x00" * int(value * rate)


async def test_interruption_reports_heard_and_cut_words_per_reply() -> None:
    now = [100.0]
    sink = Sink(chunk_ms=None)
    playback = Playback(sink, 8000, lead_ms=200, clock=lambda: now[0])
    playback.enqueue(seconds(2.0), "We are at 100 Main Street.", "turn-1")
    playback.enqueue(seconds(2.0), "Next to the train station.", "turn-1")
    await asyncio.sleep(0.01)
    now[0] += 3.0  # all of the first sentence and half of the second have played
    assert playback.speaking
    interruption = await playback.interrupt()
    assert interruption.heard == {"turn-1": "We are at 100 Main Street. Next to"}
    assert interruption.cut == {"turn-1": "the train station."}
    assert interruption.played_ms == {"turn-1": 3000}
    assert sink.sent[-1] == stop_audio() and not playback.speaking
    await playback.close()


async def test_module_mode_sends_small_chunks_event_mode_whole_segments() -> None:
    for chunk_ms, expected in ((100, 10), (None, 1)):
        sink = Sink(chunk_ms)
        playback = Playback(sink, 8000, lead_ms=5000)  # a long lead: everything is due at once
        playback.enqueue(seconds(1.0), "one second", "t")
        await asyncio.sleep(0.05)
        audio = [parse_server_message(m) for m in sink.sent]
        assert len(audio) == expected and all(isinstance(a, StreamAudio) for a in audio)
        assert b"".join(a.pcm for a in audio if isinstance(a, StreamAudio)) == seconds(1.0)
        await playback.close()


async def test_nothing_is_stopped_when_nothing_plays() -> None:
    sink = Sink(chunk_ms=100)
    playback = Playback(sink, 8000, lead_ms=200)
    assert await playback.interrupt() is not None and sink.sent == []
    await playback.close()


async def test_a_stream_of_untexted_chunks_is_one_span_with_the_same_accounting() -> None:
    """A realtime model's reply arrives as hundreds of small chunks: the timeline keeps one span for them (a
    per-chunk object would make every full garbage collection walk thousands per call), and a barge-in still
    reports how much of each reply was played, and the words of a texted segment that follows."""
    now = [50.0]
    sink = Sink(chunk_ms=None)
    playback = Playback(sink, 8000, lead_ms=200, clock=lambda: now[0])
    for _ in range(200):  # 4 s of 20 ms chunks
        playback.enqueue(seconds(0.02), "", "item-1")
    playback.enqueue(seconds(1.0), "", "item-2")
    playback.enqueue(seconds(2.0), "Please hold the line.", "item-2")
    assert len(playback._segments) == 3
    await asyncio.sleep(0.01)
    now[0] += 6.0  # item-1, item-2's chunk and half of its sentence have played
    interruption = await playback.interrupt()
    assert interruption.played_ms == {"item-1": 4000, "item-2": 2000}
    assert interruption.heard == {"item-2": "Please hold"} and interruption.cut == {"item-2": "the line."}
    await playback.close()
