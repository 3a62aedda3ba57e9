"""The `RealtimeEngine` interface: what turns one call's audio into the secretary's voice.

The session owns the socket, the outbound audio (`Playback`), the timers and the call record; an engine
owns the conversation. The contract, small on purpose so cloud engines plug in:

- `feed(pcm)`: the caller's audio, L16 at `call.sample_rate`, frame by frame, called on the event loop for
  every frame: it must return at once (queue work; never await, never block on I/O).
- `run(call)`: the whole conversation, greeting first. It plays audio with `call.playback.enqueue`, stops it
  on barge-in with `call.playback.interrupt()`, reports turns with `call.record_turn`, and returns after
  `await call.finish(action)` when the conversation ends (transfer, hangup). If it raises, the session
  apologises and transfers the caller to the domain's fallback destination.
- `close()`: release what `run` holds (sockets to a provider); called once, whether `run` ended or not.

`CallContext` is the session as an engine sees it.
"""

from __future__ import annotations

from typing import Protocol

from bridge.playback import Playback
from secretary.calls.models import CallState, TurnRecord
from secretary.conversation.actions import Action
from secretary.runtime import Runtime
from secretary.tenants.config import SecretaryConfig


class CallContext(Protocol):
    runtime: Runtime
    config: SecretaryConfig
    state: CallState
    playback: Playback
    sample_rate: int

    def caller_active(self) -> None:
        """The caller is speaking (resets the caller-silence timer)."""

    def awaiting_reply(self) -> None:
        """The caller finished a turn: audio must follow within the reply deadline, or the engine has hung."""

    def reply_started(self) -> None:
        """The engine answered (the deadline is met); also implied by queuing audio."""

    def record_turn(self, turn: TurnRecord) -> None:
        """Adds a turn to the call's transcript (`heard_text` set when the caller interrupted it)."""

    def note_barge_in(self) -> None:
        """Counts an interruption."""

    async def finish(self, action: Action) -> None:
        """Ends the conversation: waits for queued audio to play, then transfers or hangs up."""


class RealtimeEngine(Protocol):
    name: str

    def feed(self, pcm: bytes) -> None: ...

    async def run(self, call: CallContext) -> None: ...

    async def close(self) -> None: ...
