"""The HTTP status of each refusal, for the JSON APIs and the console's pages alike."""

from __future__ import annotations

from secretary.errors import (
    BadInput,
    CallEnded,
    DependencyUnavailable,
    NotFound,
    ProviderFailed,
    Refused,
    SecretaryError,
)

# Codes whose status differs from their class's (configuration problems read as "unavailable").
_STATUS_BY_CODE = {
    "too_large": 413,
    "bad_audio": 422,
    "unsupported_document": 415,
    "bad_document": 422,
    "secret_key_missing": 503,
    "undecryptable_secret": 503,
}


def status_for(exc: SecretaryError) -> int:
    explicit = getattr(exc, "http_status", None)
    if isinstance(explicit, int):
        return explicit
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Refused):
        return 403
    if isinstance(exc, CallEnded):
        return 409
    if isinstance(exc, BadInput):
        return 400
    if isinstance(exc, DependencyUnavailable | ProviderFailed):
        return 503
    return 500
