"""E-mails a taken message (transcript in the body, the recording attached) through SMTP (aiosmtplib)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from secretary.messages.models import TakenMessage
from secretary.messages.webhook import DeliveryFailed
from secretary.settings import SmtpSettings
from secretary.tenants.config import SecretaryConfig

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    security: str
    from_address: str
    timeout_s: float


def smtp_target(config: SecretaryConfig, defaults: SmtpSettings) -> SmtpTarget | None:
    """The domain's own server if it has one, else the service-wide one; None when neither is set."""
    own = config.messages.smtp
    if own is not None:
        return SmtpTarget(
            own.host,
            own.port,
            own.username,
            own.password_value(),
            own.security,
            own.from_address or defaults.from_address,
            defaults.timeout_s,
        )
    if not defaults.host:
        return None
    return SmtpTarget(
        defaults.host,
        defaults.port,
        defaults.username,
        defaults.password.get_secret_value() if defaults.password else None,
        defaults.security,
        defaults.from_address,
        defaults.timeout_s,
    )


def compose(message: TakenMessage, config: SecretaryConfig, sender: str, recipients: str) -> EmailMessage:
    who = message.caller_name or message.caller_id_name or message.caller_id_number or "an unknown caller"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = recipients
    recipient = message.recipient or config.company
    mail["Subject"] = f"Message from {who}" + (f" for {recipient}" if recipient else "")
    mail["Message-ID"] = f"<{message.message_uuid}@voiceai>"
    when = message.created_at.strftime("%Y-%m-%d %H:%M UTC")
    mail.set_content(
        f"{config.name} took a message on {when}.\n\n"
        f"For: {message.recipient or '(anyone)'}\n"
        f"Caller: {message.caller_name or '(no name given)'}\n"
        f"Call back on: {message.callback_number or '(no number given)'}\n"
        f"Caller id: {message.caller_id_name} <{message.caller_id_number}>\n"
        f"Call: {message.call_uuid}\n\n"
        f"Message:\n{message.transcript or '(nothing was understood; listen to the recording)'}\n"
    )
    return mail


def _attachment(path: str | None) -> bytes | None:
    if not path:
        return None
    file = Path(path)
    try:
        if file.stat().st_size > MAX_ATTACHMENT_BYTES:
            return None
        return file.read_bytes()
    except OSError:
        return None


class EmailSender:
    async def send(self, message: TakenMessage, config: SecretaryConfig, target: SmtpTarget, recipients: str) -> None:
        mail = compose(message, config, target.from_address, recipients)
        audio = await asyncio.to_thread(_attachment, message.audio_file)
        if audio is not None:
            mail.add_attachment(audio, maintype="audio", subtype="wav", filename="message.wav")
        try:
            await aiosmtplib.send(
                mail,
                hostname=target.host,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.security == "tls",
                start_tls=target.security == "starttls",
                timeout=target.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"SMTP {target.host}:{target.port} failed: {type(exc).__name__}: {exc}") from exc
