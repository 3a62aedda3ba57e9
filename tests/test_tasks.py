"""`cancel_and_wait` / `wait_all`: the tasks stop and are waited for, their outcomes never escape, and the
caller's own cancellation always does (the old `suppress(BaseException)` pattern swallowed it)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from secretary.tasks import cancel_and_wait, wait_all


class SlowToStop:
    """A task whose clean-up after cancellation waits for `release` (a socket's closing handshake)."""

    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self._fail_with = fail_with
        self.waiting = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name="slow-to-stop")

    @classmethod
    async def running(cls, fail_with: BaseException | None = None) -> SlowToStop:
        """Started: a task cancelled before its first step never runs its clean-up."""
        slow = cls(fail_with)
        await slow.waiting.wait()
        return slow

    async def _run(self) -> None:
        try:
            self.waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            await self.release.wait()
            if self._fail_with is not None:
                raise self._fail_with from None
            raise


async def test_the_callers_own_cancellation_propagates() -> None:
    slow = await SlowToStop.running()
    caller = asyncio.create_task(cancel_and_wait(slow.task))
    await slow.cancelled.wait()  # the caller now waits for the task's clean-up
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()
    assert not slow.task.done()  # cancelled already: it finishes on its own
    slow.release.set()
    with pytest.raises(asyncio.CancelledError):
        await slow.task


async def test_the_callers_cancellation_inside_a_timeout_becomes_the_timeout() -> None:
    slow = await SlowToStop.running()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await cancel_and_wait(slow.task)
    slow.release.set()
    await wait_all(slow.task)


async def test_a_failure_after_the_caller_left_is_still_read() -> None:
    """No "Task exception was never retrieved" for a task left to finish in the background."""
    unread: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: unread.append(context))
    slow = await SlowToStop.running(fail_with=ValueError("late"))
    caller = asyncio.create_task(cancel_and_wait(slow.task))
    await slow.cancelled.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    slow.release.set()
    await asyncio.wait({slow.task})
    await asyncio.sleep(0)  # the done callbacks run
    del slow, caller
    gc.collect()
    assert unread == []


async def test_a_tasks_failure_is_returned_not_raised() -> None:
    slow = await SlowToStop.running(fail_with=ValueError("clean-up failed"))
    slow.release.set()  # its clean-up fails as soon as it is cancelled
    errors = await cancel_and_wait(slow.task)
    assert [str(e) for e in errors] == ["clean-up failed"]
    assert slow.task.done()


async def test_finished_tasks_and_none() -> None:
    async def value() -> int:
        return 7

    async def boom() -> None:
        raise KeyError("done already")

    done = asyncio.create_task(value())
    failed = asyncio.create_task(boom())
    cancelled = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.wait({done, failed, cancelled})
    errors = await cancel_and_wait(done, None, failed, cancelled)
    assert done.result() == 7  # a finished task keeps its result: cancel() is a no-op on it
    assert [type(e) for e in errors] == [KeyError]
    assert await cancel_and_wait() == []
    assert await cancel_and_wait(None) == []


async def test_several_tasks_all_stop_before_it_returns() -> None:
    slow = [
        await SlowToStop.running(),
        await SlowToStop.running(fail_with=RuntimeError("second")),
        await SlowToStop.running(fail_with=OSError("third")),
    ]
    sleeper = asyncio.create_task(asyncio.sleep(10))

    async def release_later() -> None:
        for each in slow:
            await each.cancelled.wait()
        for each in reversed(slow):
            each.release.set()
            await asyncio.sleep(0)

    releaser = asyncio.create_task(release_later())
    errors = await cancel_and_wait(sleeper, *(each.task for each in slow), slow[1].task)
    assert all(each.task.done() for each in slow) and sleeper.cancelled()
    assert [str(e) for e in errors] == ["second", "third"]  # in the order given, once each
    await releaser


async def test_wait_all_lets_tasks_finish() -> None:
    """For work that must not be cut short (a closing handshake): waited for, never cancelled."""
    finish = asyncio.Event()

    async def handshake() -> str:
        await finish.wait()
        return "closed"

    task = asyncio.create_task(handshake())
    waiter = asyncio.create_task(wait_all(task))
    await asyncio.sleep(0)
    assert not waiter.done()
    finish.set()
    assert await waiter == []
    assert task.result() == "closed"
