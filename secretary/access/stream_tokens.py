"""Bearer tokens for the realtime bridge's streams, per domain.

`voiceai dialplan install` writes a domain's token into that domain's `v_dialplans.dialplan_xml`, which FusionPBX
shows in its dialplan editor and copies into its cache (`/var/cache/fusionpbx/dialplan.<domain>`). So each domain
gets a token of its own, derived from the operator's `bridge.token_secret` (HMAC-SHA256 over the domain's uuid,
base64url): nothing is stored per domain, and a token read out of one domain's dialplan opens streams for that
domain only. An explicit `bridge.domain_tokens` entry replaces the derived token for its domain (to rotate one
domain alone); `bridge.auth_token` stays a token for every domain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from secretary.settings import BridgeSettings

_CONTEXT = b"voiceai bridge stream token v1\x00"


def derive_domain_token(secret: str, domain_uuid: UUID) -> str:
    """43 characters of base64url: carried as-is in a dialplan and an HTTP header."""
    digest = hmac.new(secret.encode(), _CONTEXT + str(domain_uuid).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _domain_token(settings: BridgeSettings, domain_uuid: UUID) -> str | None:
    explicit = settings.domain_tokens.get(str(domain_uuid))
    if explicit is not None:
        return explicit.get_secret_value()
    if settings.token_secret is not None:
        return derive_domain_token(settings.token_secret.get_secret_value(), domain_uuid)
    return None


@dataclass(frozen=True)
class StreamToken:
    value: str | None
    scope: Literal["domain", "every domain", "none"]


def token_for_dialplan(settings: BridgeSettings, domain_uuid: UUID) -> StreamToken:
    """What a domain's dialplan carries: its own token when there is one, else the shared `auth_token`."""
    own = _domain_token(settings, domain_uuid)
    if own is not None:
        return StreamToken(own, "domain")
    if settings.auth_token is not None:
        return StreamToken(settings.auth_token.get_secret_value(), "every domain")
    return StreamToken(None, "none")


def accepted_tokens(settings: BridgeSettings, domain_uuid: UUID) -> list[str]:
    """Tokens a stream naming this domain may carry (empty: no token configured, streams are not checked)."""
    accepted = [settings.auth_token.get_secret_value()] if settings.auth_token is not None else []
    own = _domain_token(settings, domain_uuid)
    return [*accepted, own] if own is not None else accepted


def tokens_required(settings: BridgeSettings) -> bool:
    return settings.auth_token is not None or settings.token_secret is not None or bool(settings.domain_tokens)


def token_matches(presented: str, accepted: list[str]) -> bool:
    """Constant-time against every accepted token (no early exit that tells which one was close)."""
    found = False
    for token in accepted:
        found |= hmac.compare_digest(presented.encode(), token.encode())
    return found


# -- the console's test calls ---------------------------------------------------------------------------------
#
# A browser can't set an `Authorization` header on a WebSocket, and a test call must be told apart from a call
# FreeSWITCH streams (it is played over the stream, its actions are only shown): the console mints a token for
# one domain and one call uuid, valid a short while, carried in the stream's URL (`?test_call=`). It is an HMAC
# under `token_secret` with a context of its own, so it reveals neither the secret nor the domain's bearer token,
# and no client can make a normal stream a test call, or a test call of another domain or call.

_TEST_CALL_CONTEXT = b"voiceai bridge test call v1\x00"
TEST_CALL_TOKEN_S = 60  # from minting to the handshake: one press of "Call"


def _test_call_mac(secret: str, domain_uuid: UUID, call_uuid: UUID, expires: int) -> str:
    message = _TEST_CALL_CONTEXT + f"{domain_uuid}/{call_uuid}/{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_test_call_token(settings: BridgeSettings, domain_uuid: UUID, call_uuid: UUID, now: float) -> str | None:
    """`<expiry>.<mac>` for one test call of one domain; None without `token_secret` (no test calls then)."""
    if settings.token_secret is None:
        return None
    expires = int(now) + TEST_CALL_TOKEN_S
    return f"{expires}.{_test_call_mac(settings.token_secret.get_secret_value(), domain_uuid, call_uuid, expires)}"


def valid_test_call_token(settings: BridgeSettings, token: str, domain_uuid: UUID, call_uuid: UUID, now: float) -> bool:
    if settings.token_secret is None or len(token) > 100:
        return False
    expiry, _, mac = token.partition(".")
    if not expiry.isdigit() or not (now < int(expiry) <= now + TEST_CALL_TOKEN_S):
        return False
    expected = _test_call_mac(settings.token_secret.get_secret_value(), domain_uuid, call_uuid, int(expiry))
    return hmac.compare_digest(mac.encode(), expected.encode())
