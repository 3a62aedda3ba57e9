"""Request and response bodies of the admin API (they also generate its OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model

from secretary.calls.models import CallRecord, Outcome, Transport, TurnRecord
from secretary.conversation.actions import Action
from secretary.credentials.store import CredentialInfo
from secretary.fusionpbx.destinations import PbxDestination
from secretary.fusionpbx.domains import Domain
from secretary.messages.models import Delivery, MessageStatus, TakenMessage
from secretary.tenants.config import CredentialName, SecretaryConfig, TransferTarget

T = TypeVar("T")


class Paging(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offset: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=50, ge=1)


class Page(BaseModel, Generic[T]):
    items: list[T]
    offset: int
    limit: int
    has_more: bool

    @classmethod
    def of(cls, found: list[T], paging: Paging) -> Page[T]:
        """`found` was fetched with limit + 1: the extra row only says whether another page exists."""
        return cls(
            items=found[: paging.limit], offset=paging.offset, limit=paging.limit, has_more=len(found) > paging.limit
        )


# -- domains and secretaries -----------------------------------------------------------------------------

DomainOut = Domain

_DOMAIN_FIELDS = {"domain_uuid", "domain_name"}
# The secretary as an admin writes it: SecretaryConfig without the domain (that comes from the path).
SecretaryInput: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "SecretaryInput",
    __config__=ConfigDict(extra="forbid"),
    **{n: (f.annotation, f) for n, f in SecretaryConfig.model_fields.items() if n not in _DOMAIN_FIELDS},
)
SecretaryPatch: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "SecretaryPatch",
    __config__=ConfigDict(extra="forbid"),
    **{
        n: (cast(Any, f.annotation) | None, None)
        for n, f in SecretaryConfig.model_fields.items()
        if n not in _DOMAIN_FIELDS
    },
)


class SecretaryOut(SecretaryConfig):
    """The stored secretary (credential references are shown, secrets never are)."""


class DirectoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: list[TransferTarget] = Field(max_length=500)


class DirectoryOut(BaseModel):
    directory: list[TransferTarget]


class DestinationsOut(BaseModel):
    items: list[PbxDestination]


# -- calls ---------------------------------------------------------------------------------------------------


class CallFilters(Paging):
    from_: datetime | None = Field(default=None, alias="from", description="calls that started at or after")
    to: datetime | None = Field(default=None, description="calls that started before")
    outcome: Outcome | None = None
    transport: Transport | None = Field(default=None, description="the call's mode: turn, realtime or test")
    caller: str | None = Field(default=None, max_length=64, description="part of the caller's number or name")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CallSummary(BaseModel):
    call_uuid: UUID
    transport: str
    caller_id_number: str
    caller_id_name: str
    destination_number: str
    started_at: datetime
    ended_at: datetime
    duration_ms: int
    turn_count: int
    outcome: Outcome
    outcome_destination: str | None
    hangup_cause: str | None


class TurnTimings(BaseModel):
    stt_ms: int | None
    brain_ms: int | None
    tts_ms: int | None
    total_ms: int | None


class TurnOut(BaseModel):
    index: int
    at: datetime
    caller_text: str
    secretary_text: str
    heard_text: str | None
    action: Action
    brain: str | None
    timings: TurnTimings
    recording_url: str | None
    reply_url: str | None


class CallDetail(CallSummary):
    usage: dict[str, float]
    turns: list[TurnOut]

    @classmethod
    def build(cls, record: CallRecord, base_url: str) -> CallDetail:
        def link(turn: TurnRecord, kind: str, path: str | None) -> str | None:
            return f"{base_url}/turns/{turn.index}/{kind}" if path else None

        return cls(
            **summary_of(record).model_dump(),
            usage=record.usage,
            turns=[
                TurnOut(
                    index=t.index,
                    at=t.at,
                    caller_text=t.caller_text,
                    secretary_text=t.secretary_text,
                    heard_text=t.heard_text,
                    action=t.action,
                    brain=t.brain,
                    timings=TurnTimings(stt_ms=t.stt_ms, brain_ms=t.brain_ms, tts_ms=t.tts_ms, total_ms=t.total_ms),
                    recording_url=link(t, "recording", t.recording_file),
                    reply_url=link(t, "reply", t.reply_file),
                )
                for t in record.turns
            ],
        )


def summary_of(record: CallRecord, turn_count: int | None = None) -> CallSummary:
    return CallSummary(
        call_uuid=record.call_uuid,
        transport=record.transport,
        caller_id_number=record.caller_id_number,
        caller_id_name=record.caller_id_name,
        destination_number=record.destination_number,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_ms=record.duration_ms,
        turn_count=len(record.turns) if turn_count is None else turn_count,
        outcome=record.outcome,
        outcome_destination=record.outcome_destination,
        hangup_cause=record.hangup_cause,
    )


# -- messages ------------------------------------------------------------------------------------------------


class MessageFilters(Paging):
    status: MessageStatus | None = None


class MessageOut(BaseModel):
    message_uuid: UUID
    call_uuid: UUID
    caller_id_number: str
    caller_id_name: str
    recipient: str
    caller_name: str
    callback_number: str
    transcript: str
    status: MessageStatus
    handled_at: datetime | None
    created_at: datetime
    audio_url: str | None
    deliveries: list[Delivery]

    @classmethod
    def build(cls, message: TakenMessage, base_url: str) -> MessageOut:
        return cls(
            **message.model_dump(
                include={
                    "message_uuid",
                    "call_uuid",
                    "caller_id_number",
                    "caller_id_name",
                    "recipient",
                    "caller_name",
                    "callback_number",
                    "transcript",
                    "status",
                    "handled_at",
                    "created_at",
                    "deliveries",
                }
            ),
            audio_url=f"{base_url}/{message.message_uuid}/audio" if message.audio_file else None,
        )


class MessageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: MessageStatus


# -- credentials ---------------------------------------------------------------------------------------------


class CredentialBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: SecretStr = Field(min_length=1, max_length=4096)
    description: str = Field(default="", max_length=200)


class CredentialsOut(BaseModel):
    items: list[CredentialInfo]


CredentialPath = CredentialName


# -- knowledge documents -------------------------------------------------------------------------------------


class DocumentOut(BaseModel):
    """`secretary.knowledge` DocumentInfo, as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    document_uuid: UUID
    domain_uuid: UUID
    filename: str
    content_type: str
    size_bytes: int
    chunk_count: int
    status: str
    error: str | None
    created_at: datetime


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str | None = Field(
        default=None, min_length=1, max_length=255, description="name of a document sent as the raw body"
    )


class AskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=1000)


class Passage(BaseModel):
    text: str
    source: str
    score: float


class AskOut(BaseModel):
    """What the secretary would read out (None: it would say it doesn't know), from which passage, and the
    passages nearest the question."""

    answer: str | None
    answered_from: Passage | None
    passages: list[Passage]


class ReindexOut(BaseModel):
    chunks_indexed: int


class Deleted(BaseModel):
    deleted: Literal[True] = True
