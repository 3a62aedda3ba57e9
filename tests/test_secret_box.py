"""Stored credentials are encrypted with the key from the environment, rotate, and never leak."""

from __future__ import annotations

import pytest

from secretary.credentials.resolver import Credential, CredentialResolver
from secretary.credentials.secret_box import (
    SecretBox,
    SecretKeyMissing,
    UndecryptableSecret,
    generate_secret_key,
    secret_hint,
)
from secretary.settings import Settings
from secretary.tenants.config import MessageSettings, ProviderSpec
from tests.conftest import acme_config


def test_encrypts_authenticated_and_rotates() -> None:
    old, new = generate_secret_key(), generate_secret_key()
    token = SecretBox(old).encrypt("sk-live-123")
    assert "sk-live" not in token and SecretBox(old).decrypt(token) == "sk-live-123"
    with pytest.raises(UndecryptableSecret):
        SecretBox(new).decrypt(token)
    rotated = SecretBox(f"{new},{old}")
    assert rotated.decrypt(token) == "sk-live-123"
    assert SecretBox(new).decrypt(rotated.encrypt("x")) == "x"  # the first key encrypts
    with pytest.raises(UndecryptableSecret):
        SecretBox(old).decrypt(token[:-4] + "AAAA")


def test_a_missing_or_malformed_key_is_a_clear_error() -> None:
    with pytest.raises(SecretKeyMissing, match="VOICEAI_SECRET_KEY"):
        SecretBox(None).encrypt("x")
    with pytest.raises(SecretKeyMissing, match="not a valid Fernet key"):
        SecretBox("too-short")
    assert not SecretBox("").available


def test_resolved_secrets_stay_out_of_dumps_and_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = CredentialResolver(Settings(database_url=None, redis_url=None))
    config = acme_config()
    spec = ProviderSpec(name="openai", api_key_ref="openai", api_key_env="OPENAI_KEY_FOR_TEST")
    assert spec.stored_key() is None and resolver.for_spec(spec, config).value == ""
    monkeypatch.setenv("OPENAI_KEY_FOR_TEST", "from-env")
    assert resolver.for_spec(spec, config) == Credential("from-env", "operator")
    resolved = spec.with_api_key("sk-stored-secret")
    assert resolver.for_spec(resolved, config) == Credential("sk-stored-secret", "domain")
    assert "sk-stored" not in resolved.model_dump_json() and "sk-stored" not in repr(resolved)
    assert "sk-stored" not in repr(resolver.for_spec(resolved, config))
    assert resolver.for_spec(ProviderSpec.model_validate(resolved.model_dump()), config).value == "from-env"
    with pytest.raises(ValueError):
        ProviderSpec(name="x", api_key_ref="has space")
    messages = MessageSettings(webhook_url="https://example.com/hook", webhook_secret_env="HOOK_FOR_TEST")
    monkeypatch.setenv("HOOK_FOR_TEST", "hook-secret")
    assert messages.webhook_secret_value() == "hook-secret"
    with pytest.raises(ValueError):
        MessageSettings(webhook_url="ftp://example.com")
    with pytest.raises(ValueError):
        MessageSettings(email_to=["not an address"])
    assert secret_hint("sk-0123456789abcd") == "…abcd" and secret_hint("short") == "…"
