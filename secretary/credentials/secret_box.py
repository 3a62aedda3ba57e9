"""Symmetric encryption of stored secrets with a key from the environment (`VOICEAI_SECRET_KEY`).

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) authenticates what it decrypts, so a tampered or
foreign ciphertext is refused instead of yielding garbage. Several comma-separated keys allow rotation: the
first encrypts, all decrypt.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from secretary.errors import SecretaryError


class SecretKeyMissing(SecretaryError):
    """Storing or reading a credential needs VOICEAI_SECRET_KEY, and it is not set (or not a Fernet key)."""

    code = "secret_key_missing"


class UndecryptableSecret(SecretaryError):
    """The stored secret was encrypted with a key we no longer have, or was altered."""

    code = "undecryptable_secret"


def generate_secret_key() -> str:
    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, keys: str | None) -> None:
        self._fernet: MultiFernet | None = None
        if keys:
            try:
                self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])
            except (ValueError, TypeError) as exc:
                raise SecretKeyMissing(
                    "VOICEAI_SECRET_KEY is not a valid Fernet key (generate one with `voiceai secretkey`)"
                ) from exc

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretKeyMissing("set VOICEAI_SECRET_KEY to store or use encrypted credentials")
        return self._fernet

    def encrypt(self, secret: str) -> str:
        return self._require().encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._require().decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise UndecryptableSecret("a stored credential can't be decrypted with VOICEAI_SECRET_KEY") from exc


def secret_hint(secret: str) -> str:
    """What an admin may see of a secret: its length class and last four characters."""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"
