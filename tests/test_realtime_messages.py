"""A message on a realtime call with secretaries and messages in PostgreSQL, end to end: the FreeSWITCH
simulator with real speech (Piper in, Whisper out), the bridge's pipeline, and real receivers: the message
reaches an SMTP server and a signed webhook with its transcript and its recording, kept in the call's inbox.
(The same call on every engine, with a knowledge answer, on the file stores: tests/test_cross_transport.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from freeswitch.stream_sim import SimulatedCall
from secretary.credentials.secret_box import generate_secret_key
from secretary.messages.models import TakenMessage
from secretary.settings import Settings
from secretary.speech.audio import parse_wav
from secretary.speech.local_engines import LocalModels
from secretary.tenants.config import SecretaryConfig
from secretary.tenants.pg_store import PostgresSecretaryStore
from tests.conftest import acme_config
from tests.support.bridge import ACME, LiveBridge, live_bridge
from tests.support.message_sinks import SmtpSink, WebhookSink, free_port
from tests.support.speech import Speech
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(180)
SECRET = "whsec-realtime-0123456789"
MESSAGE = "Please ask Dana to call me back tomorrow morning."


@asynccontextmanager
async def message_bridge(
    url: str, make_settings: Callable[..., Settings], models: LocalModels, **bridge: Any
) -> AsyncIterator[tuple[LiveBridge, SmtpSink, WebhookSink]]:
    if "_55_" in url:
        pytest.skip("the realtime side does not depend on the FusionPBX schema: run once, with 5.4")
    smtp, webhook = SmtpSink(free_port()), WebhookSink(free_port(), SECRET)
    smtp.start()
    await webhook.start()
    try:
        async with live_bridge(
            make_settings,
            models,
            database_url=url,
            secret_key=generate_secret_key(),
            messages={"backoff_base_s": 0.05, "backoff_max_s": 0.2, "poll_s": 0.05},
            endpoints={"allow_hosts": ["127.0.0.1"]},
            smtp={"host": "127.0.0.1", "port": smtp.port, "security": "none", "from_address": "ai@acme.example.com"},
            **bridge,
        ) as live:
            runtime = live.runtime
            assert runtime.credentials is not None and runtime.database is not None
            await runtime.credentials.put(uuid.UUID(ACME), "acme-webhook", SECRET)
            messages = {"email_to": ["frontdesk@acme.example.com"], "webhook_url": webhook.url}
            config = SecretaryConfig.model_validate(
                acme_config().model_dump() | {"messages": messages | {"webhook_secret_ref": "acme-webhook"}}
            )
            await PostgresSecretaryStore(runtime.database).save(config)
            await runtime.database.execute(  # earlier tests' deliveries must not reach these receivers
                "UPDATE v_ai_message_deliveries SET delivery_state = 'failed' WHERE delivery_state = 'pending'"
            )
            runtime.start_background()
            yield live, smtp, webhook
    finally:
        smtp.stop()
        await webhook.stop()


CALLER = {"caller_id_number": "5550199", "caller_id_name": "Robin Banks", "sample_rate": 8000}


async def leave_message(call: SimulatedCall, speech: Speech) -> None:
    """Asks to leave a message for sales and leaves it; the front desk reads the details back first (the
    caller id's name and number), and the caller confirms them."""
    await call.secretary_speaks()
    await call.secretary_silent()
    asked = call.say(speech.say("I would like to leave a message for sales.", call.rate))
    await call.secretary_speaks(after_ms=asked + 500)
    await call.secretary_silent(quiet_ms=1000)  # the read-back pauses between the digits
    asked = call.say(speech.say("Yes, that is right.", call.rate))
    await call.secretary_speaks(after_ms=asked + 500)
    await call.secretary_silent()
    call.say(speech.say(MESSAGE, call.rate))
    await call.wait_closed(60)


async def delivered(live: LiveBridge, smtp: SmtpSink, webhook: WebhookSink, call_uuid: str) -> TakenMessage:
    """The call's one message, once both receivers have it; checks what they got."""
    await until(lambda: bool(smtp.received and webhook.accepted), 20)
    taken = await live.runtime.messages.list_messages(uuid.UUID(ACME))
    (message,) = [m for m in taken if str(m.call_uuid) == call_uuid]
    (hook,) = webhook.accepted
    assert hook["event"] == "message.taken" and hook["message"]["call_uuid"] == call_uuid
    assert "tomorrow" in hook["message"]["transcript"].lower() and hook["message"]["has_audio"] is True
    ((envelope, mail),) = smtp.received
    assert envelope.rcpt_tos == ["frontdesk@acme.example.com"]
    body, attachment = (part for part in mail.walk() if not part.is_multipart())
    assert "tomorrow" in str(body.get_payload(decode=True)).lower()
    assert attachment.get_filename() == "message.wav"
    assert message.audio_file is not None
    path = Path(message.audio_file)  # in the call's inbox, where the admin API serves recordings from
    assert path.parent == live.runtime.settings.spool.dir.resolve() / "in" / ACME / call_uuid
    recording = parse_wav(path.read_bytes())
    assert recording.duration_s > 1.5 and recording.rms() > 100
    return message


async def test_a_message_left_on_a_pipeline_call_is_delivered(
    writable_fusionpbx_url: str, make_settings: Callable[..., Settings], models: LocalModels, speech: Speech
) -> None:
    async with message_bridge(writable_fusionpbx_url, make_settings, models) as (live, smtp, webhook):
        async with SimulatedCall(live.url, ACME, metadata=CALLER) as call:
            await leave_message(call, speech)
        record = await live.call_over(call.call_uuid)
        message = await delivered(live, smtp, webhook, call.call_uuid)
    assert record.outcome == "message" and record.turns[-1].brain == "message"
    assert (message.recipient, message.caller_name, message.callback_number) == ("Sales", "Robin Banks", "5550199")
    assert "tomorrow" in record.turns[-1].caller_text.lower()
    assert "tomorrow" in (await speech.hear(parse_wav(Path(message.audio_file or "").read_bytes()))).lower()
