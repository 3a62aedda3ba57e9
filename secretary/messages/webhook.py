"""POSTs a taken message to the domain's webhook, signed so the receiver can trust it.

Signature: `X-VoiceAI-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with the Unix time
in `X-VoiceAI-Timestamp` (the receiver rejects old timestamps to stop replays) and the message id in
`X-VoiceAI-Delivery` (deliveries are at-least-once: the receiver drops ids it has seen).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp

SIGNATURE_HEADER = "X-VoiceAI-Signature"
TIMESTAMP_HEADER = "X-VoiceAI-Timestamp"
DELIVERY_HEADER = "X-VoiceAI-Delivery"
EVENT_HEADER = "X-VoiceAI-Event"


class DeliveryFailed(Exception):
    """One attempt failed; the courier retries later. The message is safe to show an admin."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSender:
    def __init__(self, session: aiohttp.ClientSession, timeout_s: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, url: str, secret: str | None, delivery_id: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: str(payload.get("event", "")),
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: timestamp,
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryFailed(f"webhook answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryFailed(f"webhook unreachable: {type(exc).__name__}") from exc
