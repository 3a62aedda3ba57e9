"""Errors the core raises; transports map each `code` to their own wire form (HTTP status, close code)."""

from __future__ import annotations


class SecretaryError(Exception):
    """Base class: a stable machine-readable `code` plus a message safe to show a client."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(SecretaryError):
    """Something the request names does not exist (or belongs to another domain, which reads the same)."""

    code = "not_found"


class UnknownDomain(NotFound):
    code = "unknown_domain"


class NoSecretary(NotFound):
    code = "no_secretary"


class UnknownCall(NotFound):
    code = "unknown_call"


class Refused(SecretaryError):
    """The domain exists but must not be served (disabled domain or secretary)."""

    code = "refused"


class DomainDisabled(Refused):
    code = "domain_disabled"


class SecretaryDisabled(Refused):
    code = "secretary_disabled"


class BadInput(SecretaryError):
    """The request itself is wrong: a field, a path, an audio file."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        if code is not None:
            self.code = code


class CallEnded(SecretaryError):
    """A turn arrived for a call that already ended."""

    code = "call_ended"


class DependencyUnavailable(SecretaryError):
    """PostgreSQL, Redis or another service we need did not answer."""

    code = "dependency_unavailable"

    def __init__(self, dependency: str, detail: str = "") -> None:
        super().__init__(f"{dependency} is unavailable" + (f": {detail}" if detail else ""))
        self.dependency = dependency


class ProviderFailed(SecretaryError):
    """An STT/LLM/TTS provider errored, timed out or streamed nothing."""

    code = "provider_failed"
