"""A turn as the caller hears it: what they said is transcribed, the brain answers, each sentence is spoken as
soon as it exists, and if nothing is audible `late_after_s` after the caller stopped speaking (a slow or
failing STT, brain or TTS, and the fallback still working), a short filler plays first. A speaking transport
plays what `spoken_turn` yields, in order; `bench/fallback.py` times it.

The filler comes from the TTS cache (held in memory, see `TtsCache.held`) and plays at most once per turn.
`spoken_reply` is the brain-and-TTS half alone; it plays the filler on the brain chain's `Late` event (a
`Conversation` made with `late_events=True`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from secretary.conversation.brain import Late
from secretary.conversation.conversation import Conversation, ReplyDone, Sentence
from secretary.deadlines import Deadlines, NotYet, PacedStream
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import TextToSpeech, Transcript

Filler = Callable[[], Awaitable[Pcm]]
_NO_DEADLINES = Deadlines(math.inf, math.inf, math.inf)


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    pcm: Pcm
    sentence: str | None  # None: the filler


@dataclass(frozen=True, slots=True)
class Heard:
    transcript: Transcript


async def spoken_reply(
    conversation: Conversation, caller_text: str, tts: TextToSpeech, filler: Filler | None = None
) -> AsyncIterator[ReplyAudio | ReplyDone]:
    async for event in conversation.stream(caller_text):
        if isinstance(event, Late):
            if filler is not None:
                yield ReplyAudio(await filler(), None)
        elif isinstance(event, Sentence):
            async for pcm in tts.stream(event.text):
                yield ReplyAudio(pcm, event.text)
        else:
            yield event


async def spoken_turn(
    hear: Awaitable[Transcript],
    conversation: Conversation,
    tts: TextToSpeech,
    *,
    filler: Filler | None = None,
    late_after_s: float = 1.0,
) -> AsyncIterator[Heard | ReplyAudio | ReplyDone]:
    """`hear` is the transcription of the caller's utterance, started when the caller stopped speaking."""

    async def turn() -> AsyncIterator[Heard | ReplyAudio | ReplyDone]:
        transcript = await hear
        yield Heard(transcript)
        async for item in spoken_reply(conversation, transcript.text, tts):
            yield item

    late_at = asyncio.get_running_loop().time() + late_after_s
    audible = filler is None
    paced = PacedStream(turn(), _NO_DEADLINES, "turn")
    try:
        while True:
            try:
                item = await paced.next(None if audible else late_at)
            except StopAsyncIteration:
                return
            if isinstance(item, NotYet):
                assert filler is not None
                audible = True
                yield ReplyAudio(await filler(), None)
                continue
            audible = audible or isinstance(item, ReplyAudio)
            yield item
    finally:
        await paced.aclose()
