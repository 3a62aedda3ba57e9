"""Fallback chains for STT and TTS: the next engine takes over when one errors or misses its deadline.

The last engine of a chain is the local one (Whisper, Piper): it is never skipped and has no deadline.
A cloud engine that fails is benched in `ProviderHealth` for its cool-down, so later requests skip it.

STT may be *hedged*: transcription speaks nothing, so running the local engine alongside a slow cloud one
can never duplicate speech; whichever has the text first answers. TTS never repeats audio: a sentence
falls back only before its first audio, except in `synthesize` (a whole reply, played only when complete),
which starts over on the next engine.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from secretary.calls.supervisor import Due, ReplySupervisor, ReplyTimers
from secretary.deadlines import Deadlines, NotYet, PacedStream, ProviderTimeout
from secretary.errors import ProviderFailed
from secretary.provider_health import ProviderHealth
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import SpeechToText, TextToSpeech, Transcript
from secretary.speech.sentences import split_sentences
from secretary.tasks import cancel_and_wait
from secretary.usage import UsageMeter

log = structlog.get_logger(__name__)


def health_key(engine: object) -> str:
    return str(getattr(engine, "health_key", None) or getattr(engine, "name", type(engine).__name__))


@dataclass(frozen=True, slots=True)
class SttDeadlines:
    first_result_s: float = 2.5
    hedge_after_s: float | None = 0.6  # None: never start the local engine early


class SttChain:
    def __init__(
        self,
        engines: Sequence[SpeechToText],
        deadline_s: float | None = None,
        *,
        deadlines: SttDeadlines | None = None,
        health: ProviderHealth | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        if not engines:
            raise ValueError("an STT chain needs at least one engine")
        self._engines = list(engines)
        self._deadlines = deadlines or SttDeadlines(first_result_s=deadline_s or 10.0, hedge_after_s=None)
        self._health = health
        self._usage = usage or UsageMeter()
        self.name = "+".join(e.name for e in engines)

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript:
        local = self._engines[-1]
        hedge = _Hedge(lambda: local.transcribe(audio, language, hints))
        try:
            for engine in self._engines[:-1]:
                key = health_key(engine)
                if self._health is not None and not self._health.available(key):
                    self._usage.skipped("stt", engine.name)
                    continue
                try:
                    transcript = await self._race(engine, hedge, audio, language, hints)
                except Exception as exc:
                    self._usage.failure("stt", engine.name)
                    if self._health is not None:
                        self._health.failed(key, exc, getattr(engine, "probe", None))
                    log.warning("stt_failed", provider=engine.name, error=str(exc) or type(exc).__name__)
                    if hedge.task is not None:
                        break  # the local engine is already at work: it answers
                    continue
                if transcript.provider == engine.name and self._health is not None:
                    self._health.succeeded(key)
                return self._served(transcript, fallback=transcript.provider != self._engines[0].name)
            transcript = await hedge.start()
            return self._served(transcript, fallback=len(self._engines) > 1)
        finally:
            hedge.cancel()

    async def _race(
        self, engine: SpeechToText, hedge: _Hedge, audio: Pcm, language: str, hints: Sequence[str]
    ) -> Transcript:
        """The cloud engine's transcript, or the local one's if that is ready first (hedging)."""
        loop = asyncio.get_running_loop()
        first_result_s = self._deadlines.first_result_s
        hedge_after_s = None if hedge.task is not None else self._deadlines.hedge_after_s
        clock = ReplySupervisor(ReplyTimers(first_byte_s=first_result_s, hedge_after_s=hedge_after_s))
        clock.provider_started(loop.time())
        deadline = loop.time() + first_result_s
        primary = asyncio.ensure_future(engine.transcribe(audio, language, hints))
        watched = False
        try:
            while True:
                waiting: set[asyncio.Future[Transcript]] = {primary}
                if hedge.task is not None and not hedge.task.done():
                    waiting.add(hedge.task)
                wake = clock.next_due()
                timeout = None if wake is None else max(0.0, wake - loop.time())
                await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if primary.done():
                    return primary.result()
                if hedge.task is not None and hedge.task.done() and hedge.task.exception() is None:
                    log.info("stt_hedge_won", provider=engine.name, local=hedge.task.result().provider)
                    if self._health is not None:  # it may still be merely slow: judge it by its deadline
                        self._health.watch(
                            health_key(engine), primary, deadline - loop.time(), getattr(engine, "probe", None)
                        )
                        watched = True
                    return hedge.task.result()
                for due in clock.poll(loop.time()):
                    if due is Due.NO_FIRST_BYTE:
                        raise ProviderTimeout(f"{engine.name} sent no transcript within {first_result_s}s")
                    if due is Due.HEDGE:
                        hedge.start()
        finally:
            if not primary.done() and not watched:
                await cancel_and_wait(primary)

    def _served(self, transcript: Transcript, *, fallback: bool) -> Transcript:
        self._usage.served("stt", transcript.provider, fallback=fallback)
        self._usage.audio_seconds(transcript.provider, transcript.audio_seconds)
        return transcript


class _Hedge:
    """The local engine's transcription, started at most once per request (early when hedging)."""

    def __init__(self, start: Callable[[], Awaitable[Transcript]]) -> None:
        self._start = start
        self.task: asyncio.Future[Transcript] | None = None

    def start(self) -> asyncio.Future[Transcript]:
        if self.task is None:
            self.task = asyncio.ensure_future(self._start())
        return self.task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


@dataclass(frozen=True, slots=True)
class TtsDeadlines:
    first_audio_s: float = 1.0
    stall_s: float = 1.0


class TtsChain:
    """Speaks sentence by sentence; `voice_id` / `sample_rate` are those of the engine that will speak next
    (the first healthy one), and `last_voice_id` that of the engine that spoke last (for the TTS cache)."""

    def __init__(
        self,
        engines: Sequence[TextToSpeech],
        first_audio_deadline_s: float | None = None,
        *,
        deadlines: TtsDeadlines | None = None,
        health: ProviderHealth | None = None,
        usage: UsageMeter | None = None,
    ) -> None:
        if not engines:
            raise ValueError("a TTS chain needs at least one engine")
        self._engines = list(engines)
        if deadlines is None:
            first = first_audio_deadline_s or 3.0
            deadlines = TtsDeadlines(first_audio_s=first, stall_s=first)
        self._deadlines = deadlines
        self._health = health
        self._usage = usage or UsageMeter()
        self.name = "+".join(e.name for e in engines)
        self.last_voice_id: str | None = None

    def _candidates(self) -> list[tuple[int, TextToSpeech]]:
        """(position, engine) of the engines to try now; benched ones are left out (the last never is)."""
        last = len(self._engines) - 1
        return [
            (position, engine)
            for position, engine in enumerate(self._engines)
            if position == last or self._health is None or self._health.available(health_key(engine))
        ]

    @property
    def voice_id(self) -> str:
        return self._candidates()[0][1].voice_id

    @property
    def sample_rate(self) -> int:
        return self._candidates()[0][1].sample_rate

    def _deadlines_for(self, position: int) -> Deadlines:
        if position == len(self._engines) - 1:
            return Deadlines(math.inf, math.inf, math.inf)
        return Deadlines(self._deadlines.first_audio_s, self._deadlines.stall_s, math.inf)

    def _note_skipped(self) -> None:
        if self._health is None:
            return
        for engine in self._engines[:-1]:
            if not self._health.available(health_key(engine)):
                self._usage.skipped("tts", engine.name)

    def _failed(self, engine: TextToSpeech, exc: BaseException) -> None:
        self._usage.failure("tts", engine.name)
        if self._health is not None:
            self._health.failed(health_key(engine), exc, getattr(engine, "probe", None))
        log.warning("tts_failed", provider=engine.name, error=str(exc) or type(exc).__name__)

    def _succeeded(self, position: int, engine: TextToSpeech, text: str) -> None:
        if self._health is not None and position < len(self._engines) - 1:
            self._health.succeeded(health_key(engine))
        self._usage.served("tts", engine.name, fallback=position > 0)
        self._usage.characters(engine.name, len(text))
        self.last_voice_id = engine.voice_id

    async def synthesize(self, text: str) -> Pcm:
        """The whole text as one clip. Nothing is heard before it is complete, so a failure at any point
        starts the text over on the next engine."""
        self._note_skipped()
        candidates = self._candidates()
        for index, (position, engine) in enumerate(candidates):
            last = index == len(candidates) - 1
            parts: list[Pcm] = []
            paced = PacedStream(engine.stream(text), self._deadlines_for(position), engine.name)
            try:
                while True:
                    try:
                        item = await paced.next()
                    except StopAsyncIteration:
                        break
                    assert not isinstance(item, NotYet)
                    parts.append(item)
                if not any(p.data for p in parts) and text.strip():
                    raise ProviderFailed(f"{engine.name} returned no audio")
            except Exception as exc:
                if last:
                    raise
                self._failed(engine, exc)
                continue
            finally:
                await paced.aclose()
            self._succeeded(position, engine, text)
            rate = parts[0].sample_rate if parts else engine.sample_rate
            return Pcm(b"".join(p.resampled(rate).data for p in parts), rate)
        raise ProviderFailed("no text-to-speech engine configured")  # pragma: no cover

    async def stream(self, text: str) -> AsyncIterator[Pcm]:
        self._note_skipped()
        for sentence in split_sentences(text):
            async for pcm in self._sentence(sentence):
                yield pcm

    async def _sentence(self, sentence: str) -> AsyncIterator[Pcm]:
        candidates = self._candidates()
        for index, (position, engine) in enumerate(candidates):
            last = index == len(candidates) - 1
            paced = PacedStream(engine.stream(sentence), self._deadlines_for(position), engine.name)
            started = False
            try:
                while True:
                    try:
                        item = await paced.next()
                    except StopAsyncIteration:
                        break
                    assert not isinstance(item, NotYet)
                    if item.data:
                        started = True
                        yield item
                if not started:
                    raise ProviderFailed(f"{engine.name} returned no audio")
            except Exception as exc:
                if last:
                    raise
                self._failed(engine, exc)
                if started:
                    # Part of the sentence was heard: saying it again would repeat it. The rest of the
                    # reply goes to the next engine (this one is benched now).
                    log.warning("tts_sentence_cut", provider=engine.name)
                    return
                continue
            finally:
                await paced.aclose()
            self._succeeded(position, engine, sentence)
            return
