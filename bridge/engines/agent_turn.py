"""A turn of a speech-to-speech agent that streams its reply as audio plus a transcript (ElevenLabs
Conversational AI, Gemini Live): what the caller said, what the agent said and how much of it was heard, and
how the turn reaches the call's transcript, the engine chain and the end of a message.

OpenAI Realtime keeps per-item accounting of its own (it truncates items by id), so it is not one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.engines.base import CallContext, Handoff
from bridge.playback import Interruption, split_heard
from bridge.prompts import PromptAudio
from secretary.calls.models import TurnRecord
from secretary.conversation.actions import Action
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.tenants.config import SecretaryConfig

SPEAKING_WORDS_PER_S = 2.7  # a usual text-to-speech pace (about 160 words a minute)


@dataclass
class AgentTurn:
    tag: str
    caller_text: str = ""
    said: str = ""
    audio_s: float = 0.0  # the reply's audio received so far
    last_audio: float | None = None  # loop time of its last chunk
    heard: str | None = None  # set at a barge-in: the words played before it
    action: Action = field(default_factory=Action.continue_)
    record: TurnRecord | None = None

    def cut_at(self, played_s: float) -> None:
        """A barge-in after `played_s` of the reply: the words heard are its share of the text."""
        fraction = min(1.0, max(0.0, played_s / self.audio_s)) if self.audio_s else 0.0
        self.heard = split_heard(self.said, fraction)[0]

    def write(self, call: CallContext, brain: str) -> None:
        """Writes the turn to the transcript, or updates it (more was said after a tool call, or a barge-in came
        after the reply was complete). The greeting has no caller text and is not a turn."""
        if not self.caller_text:
            return
        if self.record is None:
            self.record = call.record_turn(
                self.caller_text, self.said, heard_text=self.heard, action=self.action, brain=brain
            )
        else:
            call.lifecycle.revise(self.record, secretary_text=self.said, heard_text=self.heard, action=self.action)

    def handoff(self, interruption: Interruption) -> Handoff:
        """The reply broke off: its full length is unknown, so the words heard are counted at a speaking pace."""
        played = interruption.played_ms.get(self.tag, 0) / 1000
        words = self.said.split()
        heard = " ".join(words[: min(len(words), round(played * SPEAKING_WORDS_PER_S))])
        return Handoff(self.caller_text, self.said, heard)


async def thank_for_message(
    call: CallContext,
    runtime: Runtime,
    config: SecretaryConfig,
    prompts: PromptAudio,
    rate: int,
    message: str,
    audio: Pcm,
) -> None:
    """The caller's message is in: saved with its recording (`audio`) for the courier, then the caller is
    thanked in the local voice (the agent is not asked to improvise), then the call hangs up."""
    async with call.message_held(audio) as held:
        reply = await call.take_message(held, message)
    call.record_turn(message, reply.text, action=reply.action, brain=reply.brain)
    tts = runtime.providers.tts(config)
    call.playback.enqueue(await prompts.audio(tts, reply.text, rate), reply.text, "message-taken")
    await call.finish(reply.action)
