"""Fallback chains for STT and TTS: the next engine takes over when one errors or misses its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import structlog

from secretary.errors import ProviderFailed
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import SpeechToText, TextToSpeech, Transcript

log = structlog.get_logger(__name__)


class SttChain:
    def __init__(self, engines: Sequence[SpeechToText], deadline_s: float) -> None:
        self._engines = list(engines)
        self._deadline = deadline_s
        self.name = "+".join(e.name for e in engines)

    async def transcribe(self, audio: Pcm, language: str, hints: Sequence[str] = ()) -> Transcript:
        for position, engine in enumerate(self._engines):
            if position == len(self._engines) - 1:
                return await engine.transcribe(audio, language, hints)
            try:
                async with asyncio.timeout(self._deadline):
                    return await engine.transcribe(audio, language, hints)
            except Exception as exc:
                log.warning("stt_failed", provider=engine.name, error=str(exc) or type(exc).__name__)
        raise ProviderFailed("no speech-to-text engine configured")  # pragma: no cover


class TtsChain:
    """Falls back only before the first audio of a sentence: audio already sent is never repeated."""

    def __init__(self, engines: Sequence[TextToSpeech], first_audio_deadline_s: float) -> None:
        self._engines = list(engines)
        self._deadline = first_audio_deadline_s
        self.name = "+".join(e.name for e in engines)
        self.voice_id = engines[0].voice_id
        self.sample_rate = engines[0].sample_rate

    async def synthesize(self, text: str) -> Pcm:
        parts = [pcm async for pcm in self.stream(text)]
        if not parts:
            return Pcm(b"", self.sample_rate)
        rate = parts[0].sample_rate
        return Pcm(b"".join(p.resampled(rate).data for p in parts), rate)

    async def stream(self, text: str) -> AsyncIterator[Pcm]:
        for position, engine in enumerate(self._engines):
            last = position == len(self._engines) - 1
            source = engine.stream(text)
            started = False
            try:
                while True:
                    try:
                        if started or last:
                            pcm = await anext(source)
                        else:
                            pcm = await asyncio.wait_for(anext(source), self._deadline)
                    except StopAsyncIteration:
                        return
                    started = True
                    yield pcm
            except Exception as exc:
                if last or started:
                    raise
                log.warning("tts_failed", provider=engine.name, error=str(exc) or type(exc).__name__)
            finally:
                await source.aclose()  # type: ignore[attr-defined]
