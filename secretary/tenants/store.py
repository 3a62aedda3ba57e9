"""The interface both secretary stores implement, and the short-lived cache in front of them."""

from __future__ import annotations

import time
from typing import Protocol
from uuid import UUID

from secretary.errors import BadInput
from secretary.tenants.config import SecretaryConfig


class SecretaryStore(Protocol):
    """Finds a domain's secretary. Raises `UnknownDomain`, `NoSecretary`, `DomainDisabled`,
    `SecretaryDisabled` or `DependencyUnavailable`; never returns a disabled secretary."""

    async def by_uuid(self, domain_uuid: UUID) -> SecretaryConfig: ...

    async def by_name(self, domain_name: str) -> SecretaryConfig: ...

    async def close(self) -> None: ...


async def lookup(store: SecretaryStore, domain_uuid: str | None, domain_name: str | None) -> SecretaryConfig:
    """Resolve a request's domain reference; `domain_uuid` wins when both are given."""
    if domain_uuid:
        try:
            parsed = UUID(domain_uuid)
        except ValueError:
            raise BadInput("domain_uuid is not a UUID", field="domain_uuid") from None
        return await store.by_uuid(parsed)
    if domain_name:
        return await store.by_name(domain_name)
    raise BadInput("domain_uuid or domain_name is required", field="domain_uuid")


class CachedSecretaryStore:
    """Keeps each answer for a few seconds, so a call's turns don't each cost a database round trip.
    Refusals are not cached: an admin who just enabled a domain is served at once."""

    def __init__(self, inner: SecretaryStore, ttl_s: float) -> None:
        self._inner = inner
        self._ttl = ttl_s
        self._by_uuid: dict[UUID, tuple[float, SecretaryConfig]] = {}
        self._by_name: dict[str, tuple[float, SecretaryConfig]] = {}

    async def by_uuid(self, domain_uuid: UUID) -> SecretaryConfig:
        hit = self._by_uuid.get(domain_uuid)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return self._remember(await self._inner.by_uuid(domain_uuid))

    async def by_name(self, domain_name: str) -> SecretaryConfig:
        hit = self._by_name.get(domain_name.casefold())
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return self._remember(await self._inner.by_name(domain_name))

    def invalidate(self) -> None:
        self._by_uuid.clear()
        self._by_name.clear()

    def _remember(self, config: SecretaryConfig) -> SecretaryConfig:
        if self._ttl > 0:
            expires = time.monotonic() + self._ttl
            self._by_uuid[config.domain_uuid] = (expires, config)
            self._by_name[config.domain_name.casefold()] = (expires, config)
        return config

    async def close(self) -> None:
        await self._inner.close()
