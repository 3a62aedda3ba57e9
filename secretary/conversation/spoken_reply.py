"""A reply as the caller hears it: the filler when the brain is late, then each sentence's audio as soon as
it exists. A speaking transport plays what this yields in order; `bench/fallback.py` times it.

The filler comes from the TTS cache (held in memory, see `TtsCache.held`) and plays at most once per turn,
because the brain chain emits `Late` at most once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from secretary.conversation.brain import Late
from secretary.conversation.conversation import Conversation, ReplyDone, Sentence
from secretary.speech.audio import Pcm
from secretary.speech.interfaces import TextToSpeech


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    pcm: Pcm
    sentence: str | None  # None: the filler


async def spoken_reply(
    conversation: Conversation,
    caller_text: str,
    tts: TextToSpeech,
    filler: Callable[[], Awaitable[Pcm]] | None = None,
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
