"""`PacedStream`: first-byte, stall and total deadlines on a real async stream, and waiting "until a moment"
without losing the item still on its way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from secretary.deadlines import NOT_YET, Deadlines, PacedStream, ProviderTimeout, within_deadlines


async def paced_items(delays: Sequence[float]) -> AsyncIterator[int]:
    for index, delay in enumerate(delays):
        await asyncio.sleep(delay)
        yield index


async def drain(source: AsyncIterator[int], deadlines: Deadlines) -> list[int]:
    return [item async for item in within_deadlines(source, deadlines, "test provider")]


async def test_items_in_time_pass_through() -> None:
    assert await drain(paced_items([0.01, 0.02, 0.01]), Deadlines(1, 1, 5)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("delays", "deadlines", "reason"),
    [
        ([0.5], Deadlines(0.1, 1, 5), "sent nothing"),
        ([0.0, 0.5], Deadlines(1, 0.1, 5), "stalled"),
        # each gap far under the stall limit, so a busy box (a late sleep) can only make the total longer
        ([0.0, 0.1, 0.1, 0.1, 0.1], Deadlines(1, 1.0, 0.3), "ran too long"),
    ],
)
async def test_a_late_item_is_a_provider_timeout(delays: list[float], deadlines: Deadlines, reason: str) -> None:
    with pytest.raises(ProviderTimeout, match=reason):
        await drain(paced_items(delays), deadlines)


async def test_waiting_until_a_moment_keeps_the_pending_item() -> None:
    loop = asyncio.get_running_loop()
    paced = PacedStream(paced_items([0.2]), Deadlines(1, 1, 5))
    try:
        assert await paced.next(until=loop.time() + 0.05) is NOT_YET
        assert await paced.next() == 0  # the same read went on: nothing was cancelled or lost
        with pytest.raises(StopAsyncIteration):
            await paced.next()
    finally:
        await paced.aclose()


async def test_time_the_consumer_spends_elsewhere_is_not_the_providers() -> None:
    paced = PacedStream(paced_items([0.0, 0.0]), Deadlines(0.5, 0.5, 5))
    try:
        assert await paced.next() == 0
        await asyncio.sleep(1.0)  # e.g. speaking the first sentence
        assert await paced.next() == 1
    finally:
        await paced.aclose()


async def test_closing_mid_read_closes_the_source() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        try:
            await asyncio.sleep(10)
            yield 1
        finally:
            closed.set()

    paced = PacedStream(source(), Deadlines(5, 5, 5))
    assert await paced.next(until=asyncio.get_running_loop().time() + 0.02) is NOT_YET
    await paced.aclose()
    await asyncio.wait_for(closed.wait(), 1)
