"""Which key a provider entry may use, and where it may be sent: the one place that decides it.

Three kinds of credential exist (SECURITY.md, "Credentials"):
- a domain's own stored credential (`api_key_ref`): used by that domain's entries, sent wherever they point;
- an operator credential named by an entry (`api_key_env`): such entries are operator-owned — a domain key can
  keep, reorder or remove them but never create or change one (`operator_owned_changes`);
- a provider's deployment default (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, …, `llm.api_key`): used by entries
  without a key of their own in the operator's YAML secretaries, and by database secretaries only when the
  operator shared the defaults (`credentials.share_default_keys`) — and then only sent to the provider's own
  endpoint, the operator's `llm.base_url` or a host the operator listed (`credentials.operator_endpoints`),
  never to a `base_url` a tenant chose.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import structlog

from secretary.settings import Settings
from secretary.tenants.config import ProviderSpec, SecretaryConfig

log = structlog.get_logger(__name__)

# The usual environment variable of each provider that needs a key.
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "openai_realtime": "OPENAI_API_KEY",
    "groq": "GROQ_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "deepgram": "DEEPGRAM_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
    "elevenlabs_convai": "ELEVENLABS_API_KEY",
    "gemini_live": "GEMINI_API_KEY",
}
# Providers whose deployment default may also be the operator's `llm.api_key`.
_LLM_KEY_PROVIDERS = {"openai", "openai_realtime"}


@dataclass(frozen=True, slots=True)
class Credential:
    """A resolved key: its value ("" for none) and whose it is. `fingerprint` identifies it in cache and health
    keys without revealing it."""

    value: str
    origin: Literal["domain", "operator", "none"]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()[:12] if self.value else "nokey"

    def __repr__(self) -> str:  # never the value, even in a traceback's locals
        return f"Credential(origin={self.origin!r}, fingerprint={self.fingerprint!r})"


NO_CREDENTIAL = Credential("", "none")


@dataclass(frozen=True, slots=True)
class ProviderIdentity:
    """Who an adapter is: its entry, key and cache scope. Whatever may differ between two domains' adapters
    (model, voice, options, endpoint, key, scope) is in `digest`, so adapters, their health and their cached
    output are shared only where everything that decides their behaviour is the same."""

    credential: Credential
    scope: str
    digest: str

    def health_key(self, kind: str, spec: ProviderSpec) -> str:
        base = spec.base_url or "default"
        return f"{kind}:{spec.name}:{base}:{spec.model or ''}:{self.credential.fingerprint}:{self.digest}"


def origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an endpoint, with the scheme's default port; None for what can't be parsed."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)


class CredentialResolver:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        endpoints = [*settings.credentials.operator_endpoints]
        if settings.llm.base_url:
            endpoints.append(settings.llm.base_url)
        self._operator_origins = {o for o in (origin_of(u) for u in endpoints) if o is not None}

    def is_operator_endpoint(self, base_url: str | None) -> bool:
        """The provider's own endpoint (no `base_url`) or one the operator configured or listed."""
        if base_url is None:
            return True
        return origin_of(base_url) in self._operator_origins

    def for_spec(self, spec: ProviderSpec, config: SecretaryConfig, provider: str | None = None) -> Credential:
        """The key `spec` may use for `config`'s domain. `provider` names the default-key family when it
        differs from `spec.name` (an alias such as `gemini` → `gemini_live`)."""
        stored = spec.stored_key()
        if stored:
            return Credential(stored, "domain")
        if spec.api_key_env:
            value = os.environ.get(spec.api_key_env, "")
            return Credential(value, "operator") if value else NO_CREDENTIAL
        return self._default(provider or spec.name, spec.base_url, config)

    def _default(self, provider: str, base_url: str | None, config: SecretaryConfig) -> Credential:
        if not (config.operator_owned or self._settings.credentials.share_default_keys):
            return NO_CREDENTIAL
        if not config.operator_owned and not self.is_operator_endpoint(base_url):
            log.warning("operator_key_withheld", domain=config.domain_name, provider=provider, reason="tenant endpoint")
            return NO_CREDENTIAL
        variable = DEFAULT_KEY_ENV.get(provider)
        value = os.environ.get(variable, "") if variable else ""
        llm_key = self._settings.llm.api_key
        if not value and provider in _LLM_KEY_PROVIDERS and llm_key is not None:
            value = llm_key.get_secret_value()
        return Credential(value, "operator") if value else NO_CREDENTIAL

    def identify(self, spec: ProviderSpec, config: SecretaryConfig, provider: str | None = None) -> ProviderIdentity:
        credential = self.for_spec(spec, config, provider)
        scope = self.cache_scope(spec, credential, config)
        identity = f"{spec.model_dump_json()}\0{credential.fingerprint}\0{scope}"
        return ProviderIdentity(credential, scope, hashlib.sha256(identity.encode()).hexdigest()[:16])

    def cache_scope(self, spec: ProviderSpec, credential: Credential, config: SecretaryConfig) -> str:
        """What may share cached output (TTS audio) with other domains: only an operator endpoint with an
        operator key or none; a tenant's endpoint or own key is scoped to its domain."""
        if credential.origin != "domain" and self.is_operator_endpoint(spec.base_url):
            return "shared"
        return f"domain:{config.domain_uuid}"


def operator_owned_changes(before: SecretaryConfig | None, after: SecretaryConfig) -> list[str]:
    """Fields of `after` that name an operator credential (`*_env`) in an entry that `before` does not hold
    exactly as it is: what a domain key may not write. Keeping, reordering or removing such entries is fine."""
    changes: list[str] = []
    kinds = ("stt", "brain", "tts", "realtime", "embeddings")
    for kind in kinds:
        allowed = {s.model_dump_json() for s in getattr(before.providers, kind)} if before else set()
        for index, spec in enumerate(getattr(after.providers, kind)):
            if spec.api_key_env and spec.model_dump_json() not in allowed:
                changes.append(f"providers.{kind}.{index}.api_key_env")
    old = before.messages if before else None
    new = after.messages
    if new.smtp is not None and new.smtp.password_env and (old is None or old.smtp != new.smtp):
        changes.append("messages.smtp.password_env")
    if new.webhook_secret_env and (
        old is None or (old.webhook_secret_env, old.webhook_url) != (new.webhook_secret_env, new.webhook_url)
    ):
        changes.append("messages.webhook_secret_env")
    return changes
