"""The streaming STT interface on Deepgram (official SDK against the local `/v1/listen` server): a caller's
turn fed in real time yields speech start, interim text, final text and the end of the utterance; a silent
caller is kept alive with KeepAlive; CloseStream flushes; a stream closed mid-utterance is an error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from secretary.errors import ProviderFailed
from secretary.providers import ProviderFactory
from secretary.speech.audio import Pcm, silence
from secretary.speech.streaming import EndOfUtterance, FinalSegment, Interim, SpeechStarted, SttEvent, SttStream
from tests.providers.conftest import spec, with_providers
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_servers import Fault
from tests.support.speech import Speech
from tests.support.waiting import until

RATE = 8000


async def feed_live(stream: SttStream, audio: Pcm, chunk_s: float = 0.1) -> None:
    """Send `audio` at real-time pace against an absolute clock, as a call delivers it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    step = int(RATE * chunk_s) * 2
    for index, offset in enumerate(range(0, len(audio.data), step)):
        await asyncio.sleep(max(0.0, start + index * chunk_s - loop.time()))
        await stream.send(audio.data[offset : offset + step])


async def collect(stream: SttStream, into: list[SttEvent]) -> None:
    async for event in stream.events():
        into.append(event)


def kinds(events: Sequence[SttEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_a_live_turn_ends_on_deepgrams_endpointing(
    patient_factory: ProviderFactory, fake_deepgram: FakeDeepgram, speech: Speech
) -> None:
    fake_deepgram.idle_timeout_s = 0.8
    config = with_providers(stt=[spec("deepgram", fake_deepgram.url, options={"keepalive_s": 0.25})])
    engine = patient_factory.streaming_stt(config)
    assert engine is not None
    stream = await engine.open(RATE, "en", ["Billing"])
    events: list[SttEvent] = []
    reader = asyncio.create_task(collect(stream, events))
    try:
        turn = silence(0.3, RATE) + speech.say("I would like to speak to billing please.", RATE) + silence(1.2, RATE)
        await feed_live(stream, turn)
        # The caller says nothing for longer than the server's idle limit: KeepAlive holds the stream open. (The
        # server counts them once its Whisper is done with the turn: on a busy box that is seconds later.)
        await until(lambda: fake_deepgram.keepalives >= 3, within_s=30)
        assert fake_deepgram.closed_idle == 0
        await stream.finish()
        await asyncio.wait_for(reader, 5)
    finally:
        await stream.close()

    order = kinds(events)
    assert order[0] == "SpeechStarted"
    assert "Interim" in order and order.index("Interim") < order.index("EndOfUtterance")
    ends = [e for e in events if isinstance(e, EndOfUtterance)]
    assert len(ends) == 1 and "billing" in ends[0].text.lower()
    finals = " ".join(e.text for e in events if isinstance(e, FinalSegment))
    assert finals == ends[0].text
    assert isinstance(events[0], SpeechStarted) and events[0].at_s == pytest.approx(0.3, abs=0.05)
    assert all(e.text for e in events if isinstance(e, Interim))
    assert fake_deepgram.close_streams == 1


async def test_without_keepalive_an_idle_stream_is_closed_and_reported(
    patient_factory: ProviderFactory, fake_deepgram: FakeDeepgram
) -> None:
    fake_deepgram.idle_timeout_s = 0.4
    config = with_providers(stt=[spec("deepgram", fake_deepgram.url, options={"keepalive_s": 30})])
    engine = patient_factory.streaming_stt(config)
    assert engine is not None
    stream = await engine.open(RATE, "en")
    try:
        with pytest.raises(ProviderFailed, match="1011"):
            async for _event in stream.events():
                pass
    finally:
        await stream.close()
    assert fake_deepgram.closed_idle == 1


async def test_a_stream_closed_mid_utterance_is_an_error(
    patient_factory: ProviderFactory, fake_deepgram: FakeDeepgram, speech: Speech
) -> None:
    fake_deepgram.fault = Fault.DISCONNECT
    config = with_providers(stt=[spec("deepgram", fake_deepgram.url)])
    engine = patient_factory.streaming_stt(config)
    assert engine is not None
    stream = await engine.open(RATE, "en")
    events: list[SttEvent] = []
    try:
        reader = asyncio.create_task(collect(stream, events))
        with pytest.raises(ProviderFailed, match="1011"):  # sending more audio fails at once
            await feed_live(stream, speech.say("I would like to speak to billing please.", RATE), chunk_s=0.02)
        with pytest.raises(ProviderFailed, match="1011"):  # and so does reading
            await asyncio.wait_for(reader, 3)
    finally:
        await stream.close()
    assert kinds(events) == ["SpeechStarted"]
