"""Live call state, in memory and in a real Redis: a call uuid is claimed by its first domain, and no other
domain can read, overwrite or delete that call's state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from secretary.calls.models import CallState
from secretary.calls.state_store import CallClaimed, CallStateStore, MemoryCallStateStore, RedisCallStateStore
from secretary.errors import DependencyUnavailable
from tests.support import databases

ACME, GLOBEX = uuid.UUID(databases.ACME), uuid.UUID(databases.GLOBEX)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[CallStateStore]:
    states: CallStateStore = (
        MemoryCallStateStore(ttl_s=60) if request.param == "memory" else RedisCallStateStore(redis_url, 60, 2.0)
    )
    yield states
    await states.close()


def state(domain_uuid: uuid.UUID, call_uuid: uuid.UUID, name: str) -> CallState:
    return CallState(call_uuid=call_uuid, domain_uuid=domain_uuid, domain_name=name, transport="turn")


async def test_a_call_is_its_first_domains_and_another_domain_touches_nothing(store: CallStateStore) -> None:
    call_uuid = uuid.uuid4()
    acme = state(ACME, call_uuid, "acme.example.com")
    await store.put(acme)
    assert await store.claim(call_uuid, ACME)  # renewing its own claim
    assert not await store.claim(call_uuid, GLOBEX)
    with pytest.raises(CallClaimed) as refused:
        await store.put(state(GLOBEX, call_uuid, "globex.example.com"))
    assert refused.value.code == "unknown_call" and "already in use" in refused.value.message
    await store.delete(GLOBEX, call_uuid)  # globex has nothing here to delete
    assert await store.get(call_uuid) == acme
    await store.delete(ACME, call_uuid)
    assert await store.get(call_uuid) is None
    assert await store.claim(call_uuid, GLOBEX)  # released: the uuid may be used again
    await store.delete(GLOBEX, call_uuid)


async def test_domains_racing_for_one_call_leave_it_one_owner(store: CallStateStore) -> None:
    call_uuid, domains = uuid.uuid4(), [ACME, GLOBEX] * 10
    won = await asyncio.gather(*(store.claim(call_uuid, domain) for domain in domains))
    owners = {domain for domain, claimed in zip(domains, won, strict=True) if claimed}
    assert len(owners) == 1
    await store.delete(owners.pop(), call_uuid)


async def test_the_bridge_finishing_late_leaves_the_turn_based_rest_of_its_call(store: CallStateStore) -> None:
    """A realtime call that went on turn-based: the bridge's late cleanup (delete for `realtime`) must not take
    the turn-based state, or its claim, with it."""
    call_uuid = uuid.uuid4()
    realtime = state(ACME, call_uuid, "acme.example.com").model_copy(update={"transport": "realtime"})
    await store.put(realtime)
    turn = state(ACME, call_uuid, "acme.example.com")
    await store.put(turn)  # the turn-based service took over
    await store.delete(ACME, call_uuid, "realtime")
    assert await store.get(call_uuid) == turn
    assert not await store.claim(call_uuid, GLOBEX)
    await store.delete(ACME, call_uuid, "turn")
    assert await store.get(call_uuid) is None


async def test_a_domain_lists_its_own_calls_in_progress_and_no_others(store: CallStateStore) -> None:
    """Invented domains of their own (the Redis database is shared by the module's tests)."""
    first, second = uuid.uuid4(), uuid.uuid4()
    states = [state(first, uuid.uuid4(), "first.example.net") for _ in range(3)]
    calls = [s.call_uuid for s in states]
    for one in states:
        await store.put(one)
    await store.put(state(second, uuid.uuid4(), "second.example.net"))
    await store.put(states[0].model_copy(update={"conversation_turns": 2}))
    listed = await store.active(first, limit=10)
    assert [s.call_uuid for s in listed] == calls  # oldest first, each once, its newest state
    assert listed[0].conversation_turns == 2
    assert {s.domain_uuid for s in await store.active(second, limit=10)} == {second}
    assert len(await store.active(first, limit=2)) == 2
    await store.delete(second, calls[1])  # not second's call: still listed under first
    await store.delete(first, calls[2])
    assert [s.call_uuid for s in await store.active(first, limit=10)] == calls[:2]
    assert await store.active(uuid.uuid4(), limit=10) == []
    for call_uuid in calls[:2]:
        await store.delete(first, call_uuid)
    assert await store.active(first, limit=10) == []


async def test_an_unknown_call_has_no_state(store: CallStateStore) -> None:
    assert await store.get(uuid.uuid4()) is None


async def test_redis_down_is_a_dependency_error_not_a_claim() -> None:
    states = RedisCallStateStore("redis://127.0.0.1:9/0", 60, 1.0)
    try:
        with pytest.raises(DependencyUnavailable):
            await states.claim(uuid.uuid4(), ACME)
        with pytest.raises(DependencyUnavailable):
            await states.put(state(ACME, uuid.uuid4(), "acme.example.com"))
    finally:
        await states.close()
