"""The FusionPBX app's sign-in tokens for the console: FusionPBX has already authenticated its user and knows
their domain and permissions, so its page mints a short-lived token saying so and the console trusts it
instead of asking for a second login.

A token is `v1.<payload>.<signature>`: the payload base64url-encoded JSON `{"domain_uuid", "user", "scope",
"exp", "nonce"}`, the signature base64url HMAC-SHA256 of `v1.<payload>` under the secret the operator shares
between the FusionPBX app and `admin.console.fusionpbx_secret`. A token is refused when its signature is wrong,
it has expired, it claims to live longer than `max_age_s`, or it was already used (its nonce is remembered
until it expires)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from secretary.access.api_keys import Principal, Scope

VERSION = "v1"
MAX_TOKEN_CHARS = 2000
MAX_REMEMBERED = 100_000  # nonces of unexpired tokens held at once; past it, tokens are refused until some expire


class TokenRefused(Exception):
    """The reason is for the log and the page; it never includes the token."""


@dataclass(frozen=True, slots=True)
class ConsoleGrant:
    principal: Principal
    user: str


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, payload: dict[str, Any]) -> str:
    """Mint a token (the PHP page does the same; tests and `voiceai` tooling use this one)."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    mac = hmac.new(secret.encode(), f"{VERSION}.{body}".encode(), hashlib.sha256).digest()
    return f"{VERSION}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


class ConsoleTokenVerifier:
    def __init__(self, secret: str, max_age_s: float) -> None:
        self._secret = secret.encode()
        self._max_age_s = max_age_s
        self._used: dict[str, float] = {}  # nonce -> expiry

    def verify(self, token: str, now: float) -> ConsoleGrant:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise TokenRefused("the sign-in token is malformed")
        version, body, signature = token.split(".")
        if version != VERSION:
            raise TokenRefused(f"unknown token version {version[:10]!r}")
        expected = hmac.new(self._secret, f"{version}.{body}".encode(), hashlib.sha256).digest()
        try:
            given = _b64decode(signature)
            claims = json.loads(_b64decode(body))
        except (binascii.Error, ValueError):
            raise TokenRefused("the sign-in token is malformed") from None
        if not hmac.compare_digest(given, expected):
            raise TokenRefused("the sign-in token's signature is wrong")
        grant, expires, nonce = _claims(claims)
        if expires <= now:
            raise TokenRefused("the sign-in token has expired: open the console from FusionPBX again")
        if expires - now > self._max_age_s:
            raise TokenRefused("the sign-in token claims to live longer than the console accepts")
        self._forget_expired(now)
        if nonce in self._used:
            raise TokenRefused("the sign-in token was already used")
        if len(self._used) >= MAX_REMEMBERED:
            raise TokenRefused("too many sign-ins at once; retry shortly")
        self._used[nonce] = expires
        return grant

    def _forget_expired(self, now: float) -> None:
        for nonce in [n for n, expires in self._used.items() if expires <= now]:
            del self._used[nonce]


def _claims(claims: Any) -> tuple[ConsoleGrant, float, str]:
    if not isinstance(claims, dict):
        raise TokenRefused("the sign-in token's payload is not an object")
    user, scope, expires, nonce = claims.get("user"), claims.get("scope"), claims.get("exp"), claims.get("nonce")
    if not isinstance(user, str) or not user or len(user) > 255:
        raise TokenRefused("the sign-in token names no user")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenRefused("the sign-in token has no expiry")
    if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
        raise TokenRefused("the sign-in token has no nonce")
    if scope not in ("domain", "superadmin"):
        raise TokenRefused("the sign-in token's scope is neither domain nor superadmin")
    domain_uuid: UUID | None = None
    if scope == "domain":
        try:
            domain_uuid = UUID(str(claims.get("domain_uuid")))
        except ValueError:
            raise TokenRefused("the sign-in token names no domain") from None
    checked: Scope = "domain" if scope == "domain" else "superadmin"
    return ConsoleGrant(Principal(None, checked, domain_uuid), user), float(expires), nonce
