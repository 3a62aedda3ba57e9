"""The shape of a call while it runs (`CallState`) and after it ended (`CallRecord`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from secretary.conversation.actions import Action
from secretary.conversation.brain import ChatMessage
from secretary.conversation.desk_state import DeskState


class CallPhase(StrEnum):
    """Where a call is in its life; `secretary.calls.lifecycle` moves it, nothing else."""

    GREETING = "greeting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    TAKING_MESSAGE = "taking_message"
    TRANSFERRING = "transferring"
    ENDING = "ending"  # a hangup decided: the last words play
    ENDED = "ended"


class Transport(StrEnum):
    """Which path carried a call (its mode), as its record says (and the records API filters on)."""

    TURN = "turn"  # the v1 turn-based HTTP flow driven by the Lua script
    REALTIME = "realtime"  # the bridge, over mod_audio_stream
    TEST = "test"  # the console's test call, through the bridge


class Outcome(StrEnum):
    """How a call ended, as its record says (and the records API filters on)."""

    TRANSFER = "transfer"
    HANGUP = "hangup"
    MESSAGE = "message"
    CALLER_HANGUP = "caller_hangup"
    CALLER_SILENT = "caller_silent"
    FALLBACK = "fallback"  # the Lua script gave up on the service and sent the caller on itself


class TurnRecord(BaseModel):
    index: int
    at: datetime
    caller_text: str = ""
    secretary_text: str = ""
    heard_text: str | None = None  # set when the caller interrupted: what was actually played
    action: Action = Field(default_factory=Action)
    brain: str | None = None
    stt_ms: int | None = None
    brain_ms: int | None = None
    tts_ms: int | None = None
    total_ms: int | None = None
    recording_file: str | None = None
    reply_file: str | None = None


class CallState(BaseModel):
    """Everything needed to continue a call in another process (v1 turns can land on any replica)."""

    call_uuid: UUID
    domain_uuid: UUID
    domain_name: str
    transport: str
    caller_id_number: str = ""
    caller_id_name: str = ""
    destination_number: str = ""
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    phase: CallPhase = CallPhase.GREETING
    history: list[ChatMessage] = Field(default_factory=list)
    turns: list[TurnRecord] = Field(default_factory=list)
    conversation_turns: int = 0
    misunderstood: int = 0
    silent_turns: int = 0  # in a row: the caller said nothing
    desk: DeskState = Field(default_factory=DeskState)  # what the front desk asked, and a message's details
    outcome: Outcome | None = None
    outcome_destination: str | None = None
    usage: dict[str, float] = Field(default_factory=dict)

    @field_validator("phase", mode="before")
    @classmethod
    def _earlier_phase(cls, value: object) -> object:
        """A state saved by an earlier version (one phase for the whole conversation) reads as listening."""
        return CallPhase.LISTENING if value == "talking" else value

    def add_usage(self, key: str, amount: float = 1.0) -> None:
        self.usage[key] = self.usage.get(key, 0.0) + amount


class CallRecord(BaseModel):
    """A finished call, as saved with its transcript."""

    call_uuid: UUID
    domain_uuid: UUID
    transport: str
    caller_id_number: str
    caller_id_name: str
    destination_number: str
    started_at: datetime
    ended_at: datetime
    duration_ms: int
    outcome: Outcome
    outcome_destination: str | None
    hangup_cause: str | None
    turns: list[TurnRecord]
    usage: dict[str, float]

    @classmethod
    def from_state(cls, state: CallState, ended_at: datetime, hangup_cause: str | None) -> CallRecord:
        return cls(
            call_uuid=state.call_uuid,
            domain_uuid=state.domain_uuid,
            transport=state.transport,
            caller_id_number=state.caller_id_number,
            caller_id_name=state.caller_id_name,
            destination_number=state.destination_number,
            started_at=state.started_at,
            ended_at=ended_at,
            duration_ms=max(0, int((ended_at - state.started_at).total_seconds() * 1000)),
            outcome=state.outcome or Outcome.CALLER_HANGUP,
            outcome_destination=state.outcome_destination,
            hangup_cause=hangup_cause,
            turns=state.turns,
            usage=state.usage,
        )
