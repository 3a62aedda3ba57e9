"""Console sessions, held in the service's memory: a random id in an HttpOnly, SameSite=Strict cookie, and a
CSRF token every form and script sends back. Signing out (or a restart) ends a session; so does revoking the
API key it was opened with, checked on every request. Before a session there is the sign-in form's own token
(`LoginTokens`): a signed double submit, so no other site can post a key to sign a browser in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web

from secretary.access.api_keys import Principal

COOKIE = "voiceai_console"
LOGIN_COOKIE = "voiceai_console_login"  # the sign-in form's token, before there is a session
LOGIN_PATH = "/console/login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def csrf_matches(expected: str, given: str | None) -> bool:
    """The one comparison of a CSRF token the browser sent back (a session's, the sign-in form's)."""
    return (
        bool(expected) and given is not None and hmac.compare_digest(given.encode(errors="replace"), expected.encode())
    )


@dataclass
class Session:
    principal: Principal
    user: str  # who signed in, as the header shows it: a key's prefix, or a FusionPBX user name
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once on the next page
    last_used: float = 0.0

    def csrf_matches(self, given: str | None) -> bool:
        return csrf_matches(self.csrf, given)

    def say(self, kind: str, text: str) -> None:
        self.flash.append((kind, text))

    def take_flash(self) -> list[tuple[str, str]]:
        shown, self.flash = self.flash, []
        return shown


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()  # the store never holds a usable cookie value


class Sessions:
    def __init__(self, idle_s: float, max_sessions: int) -> None:
        self._idle_s = idle_s
        self._max = max_sessions
        self._by_key: OrderedDict[str, Session] = OrderedDict()

    def open(self, session: Session, now: float) -> str:
        session.last_used = now
        session_id = secrets.token_urlsafe(32)
        self._by_key[_key(session_id)] = session
        while len(self._by_key) > self._max:
            self._by_key.popitem(last=False)
        return session_id

    def get(self, session_id: str | None, now: float) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        key = _key(session_id)
        session = self._by_key.get(key)
        if session is None:
            return None
        if now - session.last_used > self._idle_s:
            del self._by_key[key]
            return None
        session.last_used = now
        self._by_key.move_to_end(key)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_key.pop(_key(session_id), None)


class LoginTokens:
    """The sign-in form's CSRF token: `<expiry>.<nonce>.<HMAC>` under a key of this process, set by the form's
    GET both as a cookie (HttpOnly, SameSite=Strict, only for the login path) and in a hidden field. The POST
    needs the two to be equal, signed here and unexpired: another site can neither read the field nor, without
    the key, plant a cookie that passes (a signed double submit, so nothing is stored per visitor)."""

    def __init__(self, lifetime_s: float) -> None:
        self._key = secrets.token_bytes(32)  # a restart only makes an open sign-in form ask for a reload
        self._lifetime_s = lifetime_s

    def _signature(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float) -> str:
        body = f"{int(now + self._lifetime_s)}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._signature(body)}"

    def valid(self, cookie: str | None, field: str | None, now: float) -> bool:
        if cookie is None or len(cookie) > 200 or not csrf_matches(cookie, field):
            return False
        body, _, signature = cookie.rpartition(".")
        expiry = body.partition(".")[0]
        return csrf_matches(self._signature(body), signature) and expiry.isdigit() and now < int(expiry)

    def set_cookie(self, request: web.Request, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            path=LOGIN_PATH,
            max_age=int(self._lifetime_s),
            httponly=True,
            samesite="Strict",
            secure=_secure(request),
        )


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, session_id: str) -> None:
    """Secure when the console is reached over https (directly, or through a proxy that says so)."""
    response.set_cookie(COOKIE, session_id, path="/console", httponly=True, samesite="Strict", secure=_secure(request))
