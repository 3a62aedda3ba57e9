"""The interface both secretary stores implement, and the cache in front of them (short-lived, plus the
last good answer of each domain for an outage)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

import structlog

from secretary.errors import BadInput, DependencyUnavailable, SecretaryError
from secretary.tenants.config import SecretaryConfig

log = structlog.get_logger(__name__)


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
    """Keeps each answer for `ttl_s`, so a call's turns don't each cost a database round trip, and the last
    good answer of each domain for when the database is unavailable: calls, and the messages callers leave,
    go on through an outage. Refusals are not cached and drop the domain's last answer, so a domain that is
    disabled or deleted is refused at once, and never served from memory later. `prepare` is awaited with
    each config served (the endpoint policy resolving the names it uses), so what is built from it need not
    wait for anything."""

    def __init__(
        self,
        inner: SecretaryStore,
        ttl_s: float,
        prepare: Callable[[SecretaryConfig], Awaitable[None]] | None = None,
    ) -> None:
        self._inner = inner
        self._ttl = ttl_s
        self._prepare = prepare
        self._by_uuid: dict[UUID, tuple[float, SecretaryConfig]] = {}
        self._by_name: dict[str, tuple[float, SecretaryConfig]] = {}
        self._known_by_uuid: dict[UUID, SecretaryConfig] = {}
        self._known_by_name: dict[str, SecretaryConfig] = {}

    async def by_uuid(self, domain_uuid: UUID) -> SecretaryConfig:
        hit = self._by_uuid.get(domain_uuid)
        if hit and hit[0] > time.monotonic():
            return await self._prepared(hit[1])
        config = await self._asked(self._inner.by_uuid(domain_uuid), self._known_by_uuid.get(domain_uuid))
        return await self._prepared(config)

    async def by_name(self, domain_name: str) -> SecretaryConfig:
        hit = self._by_name.get(domain_name.casefold())
        if hit and hit[0] > time.monotonic():
            return await self._prepared(hit[1])
        known = self._known_by_name.get(domain_name.casefold())
        return await self._prepared(await self._asked(self._inner.by_name(domain_name), known))

    async def _prepared(self, config: SecretaryConfig) -> SecretaryConfig:
        if self._prepare is not None:
            await self._prepare(config)
        return config

    async def _asked(self, answer: Awaitable[SecretaryConfig], known: SecretaryConfig | None) -> SecretaryConfig:
        try:
            return self._remember(await answer)
        except DependencyUnavailable as exc:
            if known is None:
                raise
            log.warning("secretary_config_from_memory", domain=known.domain_name, reason=exc.message)
            return self._remember(known)  # for `ttl_s` more: an outage costs one wait per domain, not per turn
        except SecretaryError:
            if known is not None:
                self._known_by_uuid.pop(known.domain_uuid, None)
                self._known_by_name.pop(known.domain_name.casefold(), None)
            raise

    def invalidate(self) -> None:
        """An admin changed something: ask the database again, and serve nothing older in an outage."""
        self._by_uuid.clear()
        self._by_name.clear()
        self._known_by_uuid.clear()
        self._known_by_name.clear()

    def _remember(self, config: SecretaryConfig) -> SecretaryConfig:
        self._known_by_uuid[config.domain_uuid] = config
        self._known_by_name[config.domain_name.casefold()] = config
        if self._ttl > 0:
            expires = time.monotonic() + self._ttl
            self._by_uuid[config.domain_uuid] = (expires, config)
            self._by_name[config.domain_name.casefold()] = (expires, config)
        return config

    async def close(self) -> None:
        await self._inner.close()
