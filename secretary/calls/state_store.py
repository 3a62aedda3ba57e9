"""Live call state: Redis (TTL'd JSON, survives a service restart mid-call) or process memory.

Tenants are walls here too: a call uuid is claimed by the first domain that stores it (atomically: Redis runs
the check and the write as one script), its state lives under that domain and call, and another domain can
neither read, overwrite nor delete it. The v1 routes name no domain, so `get` finds the claiming domain.
`active` lists one domain's calls (the console's live calls): Redis keeps a sorted set per domain (call uuid,
scored by when its state expires), written beside the state and pruned as it is read.
"""

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
from secretary.errors import DependencyUnavailable, UnknownCall

KEY_PREFIX = "voiceai:call:"
DOMAIN_PREFIX = "voiceai:domain-calls:"
T = TypeVar("T")

# KEYS: the claim, [the state]; ARGV: domain, ttl, [state JSON]. 0 when another domain holds the claim.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if ARGV[3] then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[2]) end
return 1
"""
# KEYS: the claim, the state; ARGV: domain, [transport]. The state key is the domain's own; the claim goes only if
# it is its. With a transport, a state of another transport (the turn-based rest of a call) is left, claim and all.
_RELEASE = """
if ARGV[2] then
  local raw = redis.call('GET', KEYS[2])
  if raw then
    local ok, state = pcall(cjson.decode, raw)
    if ok and type(state) == 'table' and state.transport ~= ARGV[2] then return 0 end
  end
end
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def _claim_key(call_uuid: UUID) -> str:
    """One hash tag per call: the claim and the states live in one slot of a Redis Cluster (a script needs it)."""
    return f"{KEY_PREFIX}{{{call_uuid}}}:owner"


def _state_key(call_uuid: UUID, domain_uuid: UUID) -> str:
    return f"{KEY_PREFIX}{{{call_uuid}}}:{domain_uuid}"


def _domain_key(domain_uuid: UUID) -> str:
    """Outside the call's slot on purpose: it is written after the claim script, never inside it."""
    return f"{DOMAIN_PREFIX}{domain_uuid}"


class CallClaimed(UnknownCall):
    """The call uuid belongs to another domain: refused, and nothing of that call is touched."""

    def __init__(self) -> None:
        super().__init__("call_uuid is already in use")


class CallStateStore(Protocol):
    async def claim(self, call_uuid: UUID, domain_uuid: UUID) -> bool:
        """Claims the call for the domain (or renews its claim); False when another domain holds it."""
        ...

    async def put(self, state: CallState) -> None:
        """Claims the call for its domain and stores the state; raises `CallClaimed` when it is another's."""
        ...

    async def get(self, call_uuid: UUID) -> CallState | None:
        """The state under the domain that claimed the call (the v1 routes name no domain)."""
        ...

    async def delete(self, domain_uuid: UUID, call_uuid: UUID, transport: str | None = None) -> None:
        """Removes the domain's own state and claim; another domain's call is left as it is, and so is, with
        `transport`, a state of another transport (a realtime call that went on turn-based keeps its new state
        when the bridge finishes its part late)."""
        ...

    async def active(self, domain_uuid: UUID, limit: int) -> list[CallState]:
        """The domain's calls in progress (at most `limit`, oldest first); never another domain's."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryCallStateStore:
    """The embedded default; state is lost when the process restarts."""

    def __init__(self, ttl_s: int) -> None:
        self._ttl = ttl_s
        self._owners: dict[UUID, tuple[float, UUID]] = {}
        self._calls: dict[tuple[UUID, UUID], tuple[float, str]] = {}

    def _owner(self, call_uuid: UUID) -> UUID | None:
        hit = self._owners.get(call_uuid)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def claim(self, call_uuid: UUID, domain_uuid: UUID) -> bool:
        owner = self._owner(call_uuid)
        if owner is not None and owner != domain_uuid:
            return False
        now = time.monotonic()
        if len(self._owners) > 1000:
            self._owners = {k: v for k, v in self._owners.items() if v[0] > now}
            self._calls = {k: v for k, v in self._calls.items() if v[0] > now}
        self._owners[call_uuid] = (now + self._ttl, domain_uuid)
        return True

    async def put(self, state: CallState) -> None:
        if not await self.claim(state.call_uuid, state.domain_uuid):
            raise CallClaimed()
        self._calls[(state.domain_uuid, state.call_uuid)] = (time.monotonic() + self._ttl, state.model_dump_json())

    async def get(self, call_uuid: UUID) -> CallState | None:
        owner = self._owner(call_uuid)
        hit = None if owner is None else self._calls.get((owner, call_uuid))
        if hit is None or hit[0] <= time.monotonic():
            return None
        return CallState.model_validate_json(hit[1])

    async def delete(self, domain_uuid: UUID, call_uuid: UUID, transport: str | None = None) -> None:
        hit = self._calls.get((domain_uuid, call_uuid))
        if transport is not None and hit is not None and CallState.model_validate_json(hit[1]).transport != transport:
            return
        self._calls.pop((domain_uuid, call_uuid), None)
        if self._owner(call_uuid) == domain_uuid:
            del self._owners[call_uuid]

    async def active(self, domain_uuid: UUID, limit: int) -> list[CallState]:
        now = time.monotonic()
        states = [
            CallState.model_validate_json(raw)
            for (domain, _call), (until, raw) in self._calls.items()
            if domain == domain_uuid and until > now
        ]
        return sorted(states, key=lambda s: s.started_at)[:limit]

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
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)

    async def _call(self, operation: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable("redis", type(exc).__name__) from exc

    async def claim(self, call_uuid: UUID, domain_uuid: UUID) -> bool:
        keys = [_claim_key(call_uuid)]
        return bool(await self._call(self._claim(keys=keys, args=[str(domain_uuid), self._ttl])))

    async def put(self, state: CallState) -> None:
        keys = [_claim_key(state.call_uuid), _state_key(state.call_uuid, state.domain_uuid)]
        args: list[str | int] = [str(state.domain_uuid), self._ttl, state.model_dump_json()]
        if not await self._call(self._claim(keys=keys, args=args)):
            raise CallClaimed()
        listed = self._redis.pipeline(transaction=False)
        listed.zadd(_domain_key(state.domain_uuid), {str(state.call_uuid): time.time() + self._ttl})
        listed.expire(_domain_key(state.domain_uuid), self._ttl)
        await self._call(listed.execute())

    async def get(self, call_uuid: UUID) -> CallState | None:
        owner = await self._call(self._redis.get(_claim_key(call_uuid)))
        if owner is None:
            return None
        raw = await self._call(self._redis.get(_state_key(call_uuid, UUID(owner.decode()))))
        return None if raw is None else CallState.model_validate_json(raw)

    async def delete(self, domain_uuid: UUID, call_uuid: UUID, transport: str | None = None) -> None:
        keys = [_claim_key(call_uuid), _state_key(call_uuid, domain_uuid)]
        args = [str(domain_uuid)] if transport is None else [str(domain_uuid), transport]
        if await self._call(self._release(keys=keys, args=args)):
            await self._call(self._redis.zrem(_domain_key(domain_uuid), str(call_uuid)))

    async def active(self, domain_uuid: UUID, limit: int) -> list[CallState]:
        key = _domain_key(domain_uuid)
        await self._call(self._redis.zremrangebyscore(key, "-inf", time.time()))
        calls = await self._call(self._redis.zrange(key, 0, max(0, limit - 1)))
        if not calls:
            return []
        # Only this domain's own state keys are read (one GET each: they live in their calls' slots).
        reads = self._redis.pipeline(transaction=False)
        for call in calls:
            reads.get(_state_key(UUID(call.decode()), domain_uuid))
        raws = await self._call(reads.execute())
        states = [CallState.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(states, key=lambda s: s.started_at)

    async def ping(self) -> bool:
        try:
            await self._call(self._redis.ping())
        except DependencyUnavailable:
            return False
        return True

    async def close(self) -> None:
        await self._redis.aclose()
