"""Live call state: Redis (TTL'd JSON, survives a service restart mid-call) or process memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from secretary.calls.models import CallState
from secretary.errors import DependencyUnavailable

KEY_PREFIX = "voiceai:call:"
T = TypeVar("T")


class CallStateStore(Protocol):
    async def put(self, state: CallState) -> None: ...

    async def get(self, call_uuid: UUID) -> CallState | None: ...

    async def delete(self, call_uuid: UUID) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCallStateStore:
    """The embedded default; state is lost when the process restarts."""

    def __init__(self, ttl_s: int) -> None:
        self._ttl = ttl_s
        self._calls: dict[UUID, tuple[float, str]] = {}

    async def put(self, state: CallState) -> None:
        now = time.monotonic()
        if len(self._calls) > 1000:
            self._calls = {k: v for k, v in self._calls.items() if v[0] > now}
        self._calls[state.call_uuid] = (now + self._ttl, state.model_dump_json())

    async def get(self, call_uuid: UUID) -> CallState | None:
        hit = self._calls.get(call_uuid)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return CallState.model_validate_json(hit[1])

    async def delete(self, call_uuid: UUID) -> None:
        self._calls.pop(call_uuid, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class RedisCallStateStore:
    def __init__(self, url: str, ttl_s: int, timeout_s: float) -> None:
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._redis: Any = aioredis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=False
        )

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable("redis", type(exc).__name__) from exc

    async def put(self, state: CallState) -> None:
        await self._call(self._redis.set(KEY_PREFIX + str(state.call_uuid), state.model_dump_json(), ex=self._ttl))

    async def get(self, call_uuid: UUID) -> CallState | None:
        raw = await self._call(self._redis.get(KEY_PREFIX + str(call_uuid)))
        return None if raw is None else CallState.model_validate_json(raw)

    async def delete(self, call_uuid: UUID) -> None:
        await self._call(self._redis.delete(KEY_PREFIX + str(call_uuid)))

    async def ping(self) -> bool:
        try:
            await self._call(self._redis.ping())
        except DependencyUnavailable:
            return False
        return True

    async def close(self) -> None:
        await self._redis.aclose()
