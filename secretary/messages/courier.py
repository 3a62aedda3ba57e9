"""The courier: takes each message in (saved before anything else) and delivers it in the background.

A call never waits for delivery: `take` stores the message and wakes the courier. Each pass claims the
deliveries that are due, attempts them concurrently, and on failure schedules the next attempt with
exponential backoff (base · 2^(attempts-1), capped) until `max_attempts`, when the delivery is marked
failed (the message stays, and an admin can redeliver it). State lives in the store, so a restart resumes
where the last process stopped. If PostgreSQL is down when a message is taken, it is spilled to files and
moved into PostgreSQL on a later pass.

Before that, while the caller's turn runs (the config lookup, STT — each can fail), the message is `held`
in `incoming` files: a turn that fails leaves it there, and a later pass saves it as it is (its recording,
whatever transcript it got), so nothing the caller said is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import aiohttp
import structlog

from secretary.credentials.endpoints import (
    Endpoint,
    EndpointNotAllowed,
    EndpointPolicy,
    smtp_endpoint,
    webhook_endpoint,
)
from secretary.errors import DependencyUnavailable, SecretaryError
from secretary.messages.email import EmailSender, smtp_target
from secretary.messages.models import (
    Delivery,
    DeliveryChannel,
    DeliveryState,
    TakenMessage,
    message_summary,
    planned_deliveries,
)
from secretary.messages.store import FileMessageStore, MessageStore
from secretary.messages.webhook import DeliveryFailed, WebhookSender
from secretary.retry_loop import RetryLoop
from secretary.settings import Settings
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.store import SecretaryStore

log = structlog.get_logger(__name__)

LEASE_S = 120.0  # a claimed delivery comes due again after this if its attempt never finished


class MessageCourier:
    def __init__(
        self,
        store: MessageStore,
        secretaries: SecretaryStore,
        settings: Settings,
        spill: FileMessageStore | None = None,
        incoming: FileMessageStore | None = None,
        endpoints: EndpointPolicy | None = None,
    ) -> None:
        self.store = store
        self._secretaries = secretaries
        self._settings = settings
        self._config = settings.messages
        self._spill = spill
        self._incoming = incoming
        self._held: set[UUID] = set()  # incoming messages a turn of this process is still taking
        poll_s = min(self._config.poll_s, self._config.backoff_base_s)
        self._loop = RetryLoop("message-courier", self.deliver_due, poll_s)
        self._session: aiohttp.ClientSession | None = None
        self._email = EmailSender()
        self._endpoints = endpoints or EndpointPolicy(settings)

    # -- intake (on the call's path: one write, never a network call to SMTP or the webhook) ---------------

    @asynccontextmanager
    async def holding(self, message: TakenMessage) -> AsyncIterator[TakenMessage]:
        """Puts the message on disk before the turn that takes it does anything that can fail; if the turn
        ends without `take`, a later pass saves the message as it stands."""
        try:
            if self._incoming is not None:
                self._held.add(message.message_uuid)  # before the file exists: a pass never takes it from the turn
                await self._incoming.add(message)
            yield message
        finally:
            if message.message_uuid in self._held:  # the turn ended before `take`
                self._held.discard(message.message_uuid)
                self._loop.wake()

    async def take(self, message: TakenMessage, config: SecretaryConfig) -> TakenMessage:
        message.deliveries = planned_deliveries(config)
        await self._save(message)
        log.info(
            "message_taken",
            message_uuid=str(message.message_uuid),
            channels=[d.channel.value for d in message.deliveries],
        )
        self._loop.wake()
        return message

    async def _save(self, message: TakenMessage) -> None:
        try:
            await self.store.add(message)
        except DependencyUnavailable:
            if self._spill is None:
                raise
            await self._spill.add(message)
            log.warning("message_spilled", message_uuid=str(message.message_uuid), reason="storage unavailable")
        if self._incoming is not None:
            await self._incoming.remove(message)
            self._held.discard(message.message_uuid)

    # -- the background loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._config.enabled:
            self._loop.start()

    async def close(self) -> None:
        await self._loop.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wake(self) -> None:
        self._loop.wake()

    async def deliver_due(self) -> int:
        """One pass: save messages left incoming, move spilled ones in, then attempt every due delivery.
        Returns attempts made."""
        await self._save_incoming()
        await self._unspill()
        attempts = 0
        limit = asyncio.Semaphore(self._config.concurrency)
        while True:
            due = await self.store.claim_due(LEASE_S, 50)
            if not due:
                return attempts
            attempts += len(due)

            async def attempt(message: TakenMessage, delivery: Delivery) -> None:
                async with limit:
                    await self._attempt(message, delivery)

            await asyncio.gather(*(attempt(m, d) for m, d in due))

    async def _save_incoming(self) -> None:
        if self._incoming is None:
            return
        for message in await self._incoming.take_all():
            if message.message_uuid in self._held:
                continue
            try:
                config = await self._secretaries.by_uuid(message.domain_uuid)
            except DependencyUnavailable:
                raise  # the config is needed to plan the deliveries: try again on the next pass
            except SecretaryError as exc:  # disabled or gone since: keep the message, send it nowhere
                log.warning("message_not_delivered", message_uuid=str(message.message_uuid), reason=exc.message)
            else:
                message.deliveries = planned_deliveries(config)
            await self._save(message)
            log.info("message_saved_after_failed_turn", message_uuid=str(message.message_uuid))

    async def _unspill(self) -> None:
        if self._spill is None:
            return
        for message in await self._spill.take_all():
            await self.store.add(message)  # raises while PostgreSQL is still down: try again next pass
            await self._spill.remove(message)
            log.info("message_unspilled", message_uuid=str(message.message_uuid))

    async def _attempt(self, message: TakenMessage, delivery: Delivery) -> None:
        delivery.attempts += 1
        now = datetime.now(UTC)
        try:
            config = await self._secretaries.by_uuid(message.domain_uuid)
            if delivery.channel is DeliveryChannel.WEBHOOK:
                await self._send_webhook(message, delivery, config)
            else:
                await self._send_email(message, delivery, config)
        except (DeliveryFailed, SecretaryError) as exc:
            reason = exc.message if isinstance(exc, SecretaryError) else str(exc)
            delivery.last_error = reason[:500]
            if delivery.attempts >= self._config.max_attempts:
                delivery.state = DeliveryState.FAILED
                log.error(
                    "delivery_failed",
                    message_uuid=str(message.message_uuid),
                    channel=delivery.channel.value,
                    attempts=delivery.attempts,
                    reason=reason,
                )
            else:
                delay = min(self._config.backoff_base_s * 2 ** (delivery.attempts - 1), self._config.backoff_max_s)
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                log.warning(
                    "delivery_retry",
                    message_uuid=str(message.message_uuid),
                    channel=delivery.channel.value,
                    attempts=delivery.attempts,
                    retry_in_s=delay,
                    reason=reason,
                )
        else:
            delivery.state, delivery.delivered_at, delivery.last_error = DeliveryState.DELIVERED, now, None
            log.info(
                "delivered",
                message_uuid=str(message.message_uuid),
                channel=delivery.channel.value,
                attempts=delivery.attempts,
            )
        await self.store.record_attempt(message, delivery)

    async def _allowed(self, channel: str, endpoint: Endpoint, config: SecretaryConfig) -> None:
        """A tenant's webhook or SMTP server on a host it may not reach fails the attempt, saying why."""
        try:
            await self._endpoints.verify(endpoint, config)
        except EndpointNotAllowed as exc:
            raise DeliveryFailed(f"{channel} not sent: {endpoint.field}: {exc}") from None

    async def _send_webhook(self, message: TakenMessage, delivery: Delivery, config: SecretaryConfig) -> None:
        await self._allowed("webhook", webhook_endpoint(config.messages, delivery.destination), config)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        sender = WebhookSender(self._session, self._config.webhook_timeout_s)
        payload = {
            "event": "message.taken",
            "attempt": delivery.attempts,
            "message": message_summary(message, config.domain_name),
        }
        await sender.send(
            delivery.destination, config.messages.webhook_secret_value(), str(message.message_uuid), payload
        )

    async def _send_email(self, message: TakenMessage, delivery: Delivery, config: SecretaryConfig) -> None:
        target = smtp_target(config, self._settings.smtp)
        if target is None:
            raise DeliveryFailed("no SMTP server is configured (smtp.host, or the domain's messages.smtp)")
        if config.messages.smtp is not None:  # the domain's own server; the service-wide one is the operator's
            await self._allowed("e-mail", smtp_endpoint(config.messages.smtp), config)
        await self._email.send(message, config, target, delivery.destination)
