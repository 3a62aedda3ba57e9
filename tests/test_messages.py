"""Taken messages: saved at once, delivered in the background by e-mail (a real SMTP server) and a signed
webhook (a real HTTP server), kept and retried with backoff while either is down, across restarts, and
spilled to files while PostgreSQL is down. Plus the whole path from a caller's spoken message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from ivr_service.app import create_app
from secretary.credentials.secret_box import generate_secret_key
from secretary.db.database import Database
from secretary.messages.courier import MessageCourier
from secretary.messages.models import DeliveryChannel, DeliveryState, TakenMessage
from secretary.messages.store import FileMessageStore, PostgresMessageStore
from secretary.runtime import Runtime
from secretary.settings import Settings
from secretary.speech.audio import Pcm, wav_bytes
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.conftest import acme_config
from tests.support.admin_env import ACME
from tests.support.message_sinks import SmtpSink, WebhookSink, free_port
from tests.support.speech import Speech
from tests.support.tcp_proxy import tcp_proxy_for

WEBHOOK_SECRET = "whsec-test-0123456789"


@dataclass
class Setup:
    runtime: Runtime
    smtp: SmtpSink
    webhook: WebhookSink
    settings: Settings


def _messages_config(webhook: WebhookSink, secret_source: dict[str, str]) -> dict[str, Any]:
    return {
        "email_to": ["frontdesk@acme.example.com", "dana@acme.example.com"],
        "webhook_url": webhook.url,
        **secret_source,
    }


@pytest.fixture(params=["postgresql", "files"])
async def setup(
    request: pytest.FixtureRequest,
    writable_fusionpbx_url: str,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Setup]:
    smtp, webhook = SmtpSink(free_port()), WebhookSink(free_port(), WEBHOOK_SECRET)
    common: dict[str, Any] = {
        "messages": {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "poll_s": 0.05, "max_attempts": 4},
        # the receivers stand on loopback: an operator who allowed it (tenant endpoints are public-only else)
        "endpoints": {"allow_hosts": ["127.0.0.1"]},
        "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "ai@acme.example.com"},
    }
    if request.param == "postgresql":
        settings = make_settings(database_url=writable_fusionpbx_url, secret_key=generate_secret_key(), **common)
        runtime = Runtime.create(settings, models=models)
        assert runtime.credentials is not None and runtime.database is not None
        await runtime.credentials.put(ACME, "acme-webhook", WEBHOOK_SECRET)
        config = SecretaryConfig.model_validate(
            acme_config().model_dump() | {"messages": _messages_config(webhook, {"webhook_secret_ref": "acme-webhook"})}
        )
        await PostgresSecretaryStore(runtime.database).save(config)
        # deliveries left pending by an earlier test of this module must not reach this test's receivers
        await runtime.database.execute(
            "UPDATE v_ai_message_deliveries SET delivery_state = 'failed' WHERE delivery_state = 'pending'"
        )
    else:
        if "_55_" in writable_fusionpbx_url:
            pytest.skip("the file store does not depend on the FusionPBX schema: run once, with 5.4")
        monkeypatch.setenv("ACME_WEBHOOK_SECRET", WEBHOOK_SECRET)
        document = {
            "secretaries": [
                acme_config().model_dump(mode="json")
                | {"messages": _messages_config(webhook, {"webhook_secret_env": "ACME_WEBHOOK_SECRET"})}
            ]
        }
        secretaries = tmp_path / "secretaries.yaml"
        secretaries.write_text(yaml.safe_dump(document))
        settings = make_settings(secretaries_file=secretaries, **common)
        runtime = Runtime.create(settings, models=models)
    yield Setup(runtime, smtp, webhook, settings)
    await runtime.close()
    smtp.stop()
    await webhook.stop()


def _message(tmp_path: Path) -> TakenMessage:
    audio = tmp_path / "message.wav"
    audio.write_bytes(wav_bytes(Pcm(b"\x00\x01" * 800, 8000)))
    return TakenMessage(
        domain_uuid=ACME,
        call_uuid=uuid4(),
        caller_id_number="5550123",
        caller_id_name="Pat Doe",
        transcript="Please call me back about the invoice.",
        audio_file=str(audio),
    )


async def _stored(runtime: Runtime, message_uuid: UUID) -> TakenMessage:
    found = await runtime.messages.get(ACME, message_uuid)
    assert found is not None
    return found


async def _until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_receivers_down_the_message_is_kept_retried_and_delivered_once_they_are_up(
    setup: Setup, tmp_path: Path
) -> None:
    runtime = setup.runtime
    config = await runtime.secretaries.by_uuid(ACME)
    message = await runtime.courier.take(_message(tmp_path), config)
    # Both channels attempted, both down. (Other tests of this session's database may have deliveries due
    # too, so the count is not asserted; the message's own delivery states below are.)
    assert await runtime.courier.deliver_due() >= 2

    stored = await _stored(runtime, message.message_uuid)
    for channel in (DeliveryChannel.EMAIL, DeliveryChannel.WEBHOOK):
        delivery = stored.delivery(channel)
        # (the courier's own poll may have retried once more meanwhile on a loaded machine: >= 1)
        assert delivery is not None and delivery.state is DeliveryState.PENDING and delivery.attempts >= 1
        assert delivery.last_error
    assert stored.transcript == "Please call me back about the invoice."

    setup.smtp.start()
    await setup.webhook.start()
    await asyncio.sleep(0.1)  # past the first backoff (0.05 s)
    await runtime.courier.deliver_due()

    stored = await _stored(runtime, message.message_uuid)
    assert {d.channel: d.state for d in stored.deliveries} == {
        DeliveryChannel.EMAIL: DeliveryState.DELIVERED,
        DeliveryChannel.WEBHOOK: DeliveryState.DELIVERED,
    }
    assert all(d.attempts >= 2 for d in stored.deliveries)  # failed while down, delivered once up
    # the webhook server verified the HMAC signature and got the message without local paths
    assert setup.webhook.refused == [] and len(setup.webhook.accepted) == 1
    payload = setup.webhook.accepted[0]
    webhook = stored.delivery(DeliveryChannel.WEBHOOK)
    assert webhook is not None and payload["event"] == "message.taken" and payload["attempt"] == webhook.attempts
    assert payload["message"]["transcript"] == "Please call me back about the invoice."
    assert payload["message"]["caller_id_number"] == "5550123" and "audio_file" not in payload["message"]
    assert setup.webhook.delivery_ids == [str(message.message_uuid)]
    # the e-mail went to both recipients, with the transcript and the recording attached
    envelope, mail = setup.smtp.received[0]
    assert sorted(envelope.rcpt_tos) == ["dana@acme.example.com", "frontdesk@acme.example.com"]
    assert "Pat Doe" in mail["Subject"]
    parts = list(mail.walk())
    assert any(
        "call me back about the invoice" in (p.get_payload(decode=True) or b"").decode(errors="ignore")
        for p in parts
        if p.get_content_type() == "text/plain"
    )
    assert any(p.get_filename() == "message.wav" for p in parts)
    assert await runtime.courier.deliver_due() == 0  # nothing is sent twice


async def test_pending_deliveries_survive_a_restart(setup: Setup, tmp_path: Path) -> None:
    first = setup.runtime
    message = await first.courier.take(_message(tmp_path), await first.secretaries.by_uuid(ACME))
    await first.courier.deliver_due()
    await first.courier.close()

    setup.smtp.start()
    await setup.webhook.start()
    second = Runtime.create(setup.settings, models=first.models)  # a new process, same store
    try:
        second.courier.start()  # the background loop this time

        async def delivered() -> bool:
            stored = await _stored(second, message.message_uuid)
            return all(d.state is DeliveryState.DELIVERED for d in stored.deliveries)

        await _until(delivered)
    finally:
        await second.close()
    assert len(setup.webhook.accepted) == 1 and len(setup.smtp.received) == 1


async def test_a_delivery_that_keeps_failing_is_marked_failed_kept_and_can_be_redelivered(
    setup: Setup, tmp_path: Path
) -> None:
    runtime = setup.runtime
    message = await runtime.courier.take(_message(tmp_path), await runtime.secretaries.by_uuid(ACME))
    for _ in range(4):  # max_attempts
        await runtime.courier.deliver_due()
        await asyncio.sleep(0.21)
    stored = await _stored(runtime, message.message_uuid)
    assert {d.state for d in stored.deliveries} == {DeliveryState.FAILED}
    assert all(d.attempts == 4 for d in stored.deliveries)

    await setup.webhook.start()
    assert await runtime.messages.redeliver(ACME, message.message_uuid)
    await runtime.courier.deliver_due()
    stored = await _stored(runtime, message.message_uuid)
    webhook = stored.delivery(DeliveryChannel.WEBHOOK)
    assert webhook is not None and webhook.state is DeliveryState.DELIVERED


async def test_a_webhook_with_the_wrong_secret_is_refused_by_the_receiver_and_retried(
    setup: Setup, tmp_path: Path
) -> None:
    setup.webhook.secret = "not-the-domain-secret"
    await setup.webhook.start()
    runtime = setup.runtime
    message = await runtime.courier.take(_message(tmp_path), await runtime.secretaries.by_uuid(ACME))
    await runtime.courier.deliver_due()
    # The courier's own retry loop (backoff 0.05 s) may have tried once more beside deliver_due.
    assert len(setup.webhook.refused) >= 1 and setup.webhook.accepted == []
    webhook = (await _stored(runtime, message.message_uuid)).delivery(DeliveryChannel.WEBHOOK)
    assert webhook is not None and webhook.state is DeliveryState.PENDING and "401" in (webhook.last_error or "")


async def test_messages_taken_while_postgresql_is_down_are_spilled_then_moved_in(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens: PostgreSQL is "down"
    settings = make_settings(database_url=writable_fusionpbx_url, messages={"backoff_base_s": 0.05})
    spill = FileMessageStore(tmp_path / "spill")
    down = Database(f"postgresql://postgres@127.0.0.1:{port}/nowhere", timeout_s=1)
    good = Database(writable_fusionpbx_url)
    secretaries = PostgresSecretaryStore(good)
    config = acme_config()  # no deliveries configured: only saving is under test
    try:
        courier = MessageCourier(PostgresMessageStore(down), secretaries, settings, spill)
        message = await courier.take(_message(tmp_path), config)
        assert [m.message_uuid for m in await spill.take_all()] == [message.message_uuid]

        recovered = MessageCourier(PostgresMessageStore(good), secretaries, settings, spill)
        await recovered.deliver_due()
        assert await spill.take_all() == []
        saved = await PostgresMessageStore(good).get(ACME, message.message_uuid)
        assert saved is not None and saved.transcript == message.transcript
        await recovered.close()
        await courier.close()
    finally:
        await down.close()
        await good.close()


async def _call_taking_a_message(client: TestClient[Any, Any], speech: Speech) -> tuple[str, Callable[..., Any]]:
    """Starts a v1 call and asks to leave a message; returns the call and a way to say the next turn."""
    call_uuid = str(uuid4())
    start = {"domain_uuid": str(ACME), "call_uuid": call_uuid, "caller_id_number": "5550123", "caller_id_name": "Pat"}
    async with client.post("/api/v1/calls", json=start) as response:
        assert response.status == 200, await response.text()

    async def say(text: str, expected: int = 200) -> dict[str, Any]:
        body = wav_bytes(speech.say(text))
        async with client.post(
            f"/api/v1/calls/{call_uuid}/turns?domain_uuid={ACME}", data=body, headers={"Content-Type": "audio/wav"}
        ) as response:
            assert response.status == expected, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    await say("I would like to leave a message for sales.")  # the details read back …
    assert (await say("Yes."))["action"]["type"] == "take_message"  # … and confirmed
    return call_uuid, say


async def test_a_message_left_during_a_postgresql_outage_is_kept_and_saved_when_it_returns(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    with tcp_proxy_for(writable_fusionpbx_url) as proxy:
        # config_cache_s is 0 here: the message turn asks PostgreSQL for the domain's config, and gets no answer
        settings = make_settings(database_url=proxy.url_for(writable_fusionpbx_url))
        runtime = Runtime.create(settings, models=models)
        try:
            async with TestClient(TestServer(create_app(runtime))) as client:
                call_uuid, say = await _call_taking_a_message(client, speech)
                proxy.cut()
                reply = await say("Please ask Dana to call me back tomorrow morning.")
                assert reply["action"]["type"] == "hangup"
                spilled = await FileMessageStore(settings.data_dir / "messages-spill").take_all()
                assert [str(m.call_uuid) for m in spilled] == [call_uuid]
                assert "tomorrow" in spilled[0].transcript.lower()

                proxy.resume()
                await runtime.courier.deliver_due()
                stored = await runtime.messages.get(ACME, spilled[0].message_uuid)
                assert stored is not None and stored.transcript == spilled[0].transcript and stored.audio_file
                assert await FileMessageStore(settings.data_dir / "messages-spill").take_all() == []
        finally:
            await runtime.close()


async def test_a_message_is_on_disk_before_the_config_lookup_that_can_fail(
    writable_fusionpbx_url: str,
    make_settings: Callable[..., Settings],
    models: LocalModels,
    speech: Speech,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The message turn reaches a replica that never saw the domain while PostgreSQL is down: the turn fails
    (503), but the caller's recording was kept first, and becomes a message once PostgreSQL is back."""
    with tcp_proxy_for(writable_fusionpbx_url) as proxy:
        url = proxy.url_for(writable_fusionpbx_url)
        first = Runtime.create(make_settings(database_url=url, redis_url=redis_url), models=models)
        replica_settings = make_settings(database_url=url, redis_url=redis_url, data_dir=tmp_path / "replica")
        replica = Runtime.create(replica_settings, models=models)
        try:
            async with TestClient(TestServer(create_app(first))) as client:
                call_uuid, _ = await _call_taking_a_message(client, speech)
            proxy.cut()
            async with TestClient(TestServer(create_app(replica))) as client:
                body = wav_bytes(speech.say("Please ask Dana to call me back tomorrow morning."))
                async with client.post(
                    f"/api/v1/calls/{call_uuid}/turns", data=body, headers={"Content-Type": "audio/wav"}
                ) as response:
                    assert response.status == 503

                proxy.resume()
                await replica.courier.deliver_due()
            saved = [m for m in await replica.messages.list_messages(ACME) if str(m.call_uuid) == call_uuid]
            assert len(saved) == 1 and saved[0].audio_file
            assert await asyncio.to_thread(Path(saved[0].audio_file).is_file)
        finally:
            await replica.close()
            await first.close()


async def test_a_spoken_message_is_recorded_and_delivered_from_the_v1_call_flow(setup: Setup, speech: Speech) -> None:
    await setup.webhook.start()
    setup.smtp.start()
    runtime = setup.runtime
    call_uuid = str(uuid4())
    async with TestClient(TestServer(create_app(runtime))) as client:
        async with client.post(
            "/api/v1/calls",
            json={
                "domain_uuid": str(ACME),
                "call_uuid": call_uuid,
                "caller_id_number": "5550199",
                "caller_id_name": "Robin",
            },
        ) as response:
            assert response.status == 200

        async def say(text: str) -> dict[str, Any]:
            body = wav_bytes(speech.say(text))
            async with client.post(
                f"/api/v1/calls/{call_uuid}/turns?domain_uuid={ACME}", data=body, headers={"Content-Type": "audio/wav"}
            ) as response:
                assert response.status == 200, await response.text()
                result: dict[str, Any] = await response.json()
                return result

        assert (await say("I would like to leave a message."))["say"]["text"] == "Of course. Who is the message for?"
        read_back = (await say("Doctor Miller."))["say"]["text"]
        assert read_back == (
            "So that's a message for Dr. Miller from Robin, and we can call you back on 5 5 5, 0 1 9 9. Is that right?"
        )
        corrected = (await say("No, call me back on 555 0123."))["say"]["text"]
        assert "call you back on 5 5 5, 0 1 2 3. Is that right?" in corrected
        assert (await say("Yes."))["action"]["type"] == "take_message"
        reply = await say("Please ask Dana to call me back tomorrow morning.")
        assert reply["action"]["type"] == "hangup"

        async def delivered() -> bool:
            return len(setup.webhook.accepted) == 1 and len(setup.smtp.received) == 1

        await _until(delivered, 20)
        async with client.post(f"/api/v1/calls/{call_uuid}/end", json={}) as response:
            assert response.status == 200
    message = setup.webhook.accepted[0]["message"]
    assert message["caller_id_name"] == "Robin" and message["call_uuid"] == call_uuid
    assert (message["recipient"], message["caller_name"], message["callback_number"]) == (
        "Dr. Miller",
        "Robin",
        "5550123",
    )
    _, mail = setup.smtp.received[0]
    assert mail["Subject"] == "Message from Robin for Dr. Miller"
    body = (
        next(p for p in mail.walk() if p.get_content_type() == "text/plain")
        .get_payload(decode=True)
        .decode()
        .replace("\r\n", "\n")
    )
    assert "For: Dr. Miller\nCaller: Robin\nCall back on: 5550123\n" in body
    assert "tomorrow" in message["transcript"].lower()
    stored = await runtime.messages.get(ACME, UUID(message["message_uuid"]))
    assert stored is not None and stored.audio_file
    assert (stored.recipient, stored.caller_name, stored.callback_number) == ("Dr. Miller", "Robin", "5550123")
    assert await asyncio.to_thread(Path(stored.audio_file).is_file)
    assert stored.audio_file.startswith(str(runtime.settings.spool.dir.resolve() / "in" / str(ACME) / call_uuid))
