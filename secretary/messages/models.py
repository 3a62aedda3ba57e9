"""A taken message and its deliveries (one per channel it goes out on)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from secretary.tenants.config import SecretaryConfig


class DeliveryChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after max_attempts; the message itself is kept, and can be redelivered


class Delivery(BaseModel):
    channel: DeliveryChannel
    destination: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    last_error: str | None = None
    delivered_at: datetime | None = None


MessageStatus = Literal["new", "handled"]


class TakenMessage(BaseModel):
    message_uuid: UUID = Field(default_factory=uuid.uuid4)
    domain_uuid: UUID
    call_uuid: UUID
    caller_id_number: str = ""
    caller_id_name: str = ""
    recipient: str = ""  # whom it is for: a directory entry's name ("": the business in general, or not asked)
    caller_name: str = ""  # as the caller gave it
    callback_number: str = ""  # as the caller confirmed it
    transcript: str = ""
    audio_file: str | None = None  # our path of the recording (in the spool)
    status: MessageStatus = "new"
    handled_at: datetime | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    deliveries: list[Delivery] = Field(default_factory=list)

    def delivery(self, channel: DeliveryChannel) -> Delivery | None:
        return next((d for d in self.deliveries if d.channel is channel), None)


def planned_deliveries(config: SecretaryConfig) -> list[Delivery]:
    """The channels a domain's settings ask for, fixed at the time the message is taken."""
    deliveries = []
    if config.messages.email_to:
        deliveries.append(Delivery(channel=DeliveryChannel.EMAIL, destination=", ".join(config.messages.email_to)))
    if config.messages.webhook_url:
        deliveries.append(Delivery(channel=DeliveryChannel.WEBHOOK, destination=config.messages.webhook_url))
    return deliveries


def message_summary(message: TakenMessage, domain_name: str) -> dict[str, object]:
    """The message as a webhook or an e-mail carries it: no local file paths, no delivery bookkeeping."""
    return {
        "message_uuid": str(message.message_uuid),
        "domain_uuid": str(message.domain_uuid),
        "domain_name": domain_name,
        "call_uuid": str(message.call_uuid),
        "caller_id_number": message.caller_id_number,
        "caller_id_name": message.caller_id_name,
        "recipient": message.recipient,
        "caller_name": message.caller_name,
        "callback_number": message.callback_number,
        "transcript": message.transcript,
        "created_at": message.created_at.isoformat(),
        "has_audio": message.audio_file is not None,
    }
