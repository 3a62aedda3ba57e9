"""The `RealtimeEngine` interface: what turns one call's audio into the secretary's voice.

The session owns the socket, the outbound audio (`Playback`), the timers and the call record; an engine
owns the conversation. The contract, small on purpose so cloud engines plug in:

- `feed(pcm)`: the caller's audio, L16 at `call.sample_rate`, frame by frame, called on the event loop for
  every frame: it must return at once (queue work; never await, never block on I/O).
- `run(call)`: the whole conversation, greeting first. It plays audio with `call.playback.enqueue`, stops it
  on barge-in with `call.playback.interrupt()`, reports turns with `call.record_turn` (and revises them with
  `call.lifecycle.revise`), hands the caller's message (their audio, and its transcript) to
  `call.message_held` / `call.take_message` and says the reply that returns, and returns after
  `await call.finish(action)` when the conversation ends (transfer, hangup). If it raises, the session
  apologises and transfers the caller to the domain's fallback destination. An engine never writes the call's
  state: the call's phase, outcome, limits, fixed lines and transcript are `call.lifecycle`'s
  (`secretary.calls.lifecycle`), the same one the turn-based mode drives.
- `close()`: release what `run` holds (sockets to a provider); called once, whether `run` ended or not.

Keys the caller presses are the session's (they mean the same as in the turn-based mode); an engine that is
also `KeyAware` is told first, so it drops the reply a key cut off as a barge-in would.

`CallContext` is the session as an engine sees it. Cloud engines (`CloudEngine`) also say when they are
connected, whether a reply is streaming, and what they leave behind when they fail, so `EngineChain` can
move a call that loses one to the next engine (ending in the pipeline) with the conversation so far.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.playback import Interruption
from secretary.calls.lifecycle import UNTIMED, CallLifecycle, Timings
from secretary.calls.models import CallState, TurnRecord
from secretary.conversation.actions import Action
from secretary.conversation.conversation import Reply
from secretary.messages.models import TakenMessage
from secretary.runtime import Runtime
from secretary.speech.audio import Pcm
from secretary.tenants.config import SecretaryConfig


class AudioOut(Protocol):
    """What an engine does with the call's outbound audio (`bridge.playback.Playback`)."""

    @property
    def speaking(self) -> bool: ...

    @property
    def ends_at(self) -> float: ...

    def enqueue(self, pcm: bytes, text: str = "", tag: str = "") -> None: ...

    async def interrupt(self) -> Interruption: ...

    async def drained(self) -> None: ...


class CallContext(Protocol):
    runtime: Runtime
    config: SecretaryConfig
    state: CallState  # read it; `lifecycle` changes it
    lifecycle: CallLifecycle
    sample_rate: int

    @property
    def playback(self) -> AudioOut: ...

    def caller_active(self) -> None:
        """The caller is speaking (resets the caller-silence timer)."""

    def awaiting_reply(self) -> None:
        """The caller finished a turn: audio must follow within the reply deadline, or the engine has hung."""

    def reply_started(self) -> None:
        """The engine answered (the deadline is met); also implied by queuing audio."""

    def record_turn(
        self,
        caller_text: str,
        secretary_text: str = "",
        *,
        action: Action | None = None,
        brain: str | None = None,
        heard_text: str | None = None,
        timings: Timings = UNTIMED,
    ) -> TurnRecord:
        """Adds a turn to the call's transcript (`heard_text` set when the caller interrupted it); its action
        moves the call (a message to take, a transfer, a hangup)."""

    def note_barge_in(self) -> None:
        """Counts an interruption."""

    def message_held(self, audio: Pcm) -> AbstractAsyncContextManager[TakenMessage]:
        """The caller's message (their audio since the message prompt) kept on disk while the block runs, so a
        failure inside it (STT, the caller hanging up) loses nothing. `take_message` inside it."""

    async def take_message(self, message: TakenMessage, transcript: str) -> Reply:
        """The message is in: saved and handed to the courier (`secretary.messages.taking`); the call's
        outcome is `message`. Returns what to say (thanks and the farewell) and do (hang up)."""

    async def finish(self, action: Action) -> None:
        """Ends the conversation: waits for queued audio to play, then transfers or hangs up."""


class RealtimeEngine(Protocol):
    name: str

    def feed(self, pcm: bytes) -> None: ...

    async def run(self, call: CallContext) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class KeyAware(Protocol):
    async def keys_pressed(self) -> None:
        """The caller pressed a key: stop talking and drop the reply in progress, as for a barge-in (the
        session answers the keys). Returns once done."""


@dataclass(frozen=True, slots=True)
class Handoff:
    """The turn a failed engine was in: what the caller said (empty if it never came back as text), what the
    engine was saying, and how much of that the caller heard. Finished turns are in `call.state.turns`."""

    caller_text: str = ""
    said_text: str = ""
    heard_text: str = ""


class CloudEngine(RealtimeEngine, Protocol):
    """A realtime engine behind a network connection: one that can fail mid-call."""

    health_key: str
    connected: asyncio.Event  # set on the provider's first message (the session is ready)

    @property
    def replying(self) -> bool:
        """A reply of the engine's is unfinished: more of its audio is still to come."""

    @property
    def quiet_s(self) -> float:
        """Seconds since the provider's last message while `replying`; 0 otherwise."""

    def handoff(self, interruption: Interruption) -> Handoff:
        """The turn in progress, given what the playback says was heard of each item (`played_ms`)."""

    async def probe(self) -> None:
        """Connect, wait for the first message, disconnect: proves the provider is back."""
