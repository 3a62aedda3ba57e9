"""Stopping background tasks without swallowing the caller's own cancellation.

`task.cancel()` then `with suppress(BaseException): await task` hides a cancellation aimed at the task that
waits: a call being torn down carried on as if nothing had happened. These helpers wait with
`asyncio.wait`, which never raises the tasks' outcomes, so the only `CancelledError` that can reach the
caller is its own, and it always propagates.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> list[BaseException]:
    """Cancels the tasks (`None` and finished ones are fine) and waits until every one has finished.

    Returns the failures other than their cancellation, for the caller that needs them; they are only
    logged at debug level here, as a task's error is for its owner to read before it cleans up. When the
    caller itself is cancelled meanwhile, that cancellation propagates at once (the tasks are cancelled
    already and finish in the background)."""
    for task in tasks:
        if task is not None:
            task.cancel()
    return await wait_all(*tasks)


async def wait_all(*tasks: asyncio.Future[Any] | None) -> list[BaseException]:
    """Waits until every task has finished, whatever its outcome (for tasks that must not be cut short,
    such as a socket's closing handshake); returns their failures as `cancel_and_wait` does."""
    waiting = list(dict.fromkeys(task for task in tasks if task is not None))  # in order, once each
    if not waiting:
        return []
    try:
        await asyncio.wait(waiting)
    except asyncio.CancelledError:
        for task in waiting:  # their outcomes are still read: no "exception was never retrieved"
            task.add_done_callback(_failure)
        raise
    return [error for task in waiting if (error := _failure(task)) is not None]


def _failure(task: asyncio.Future[Any]) -> BaseException | None:
    if task.cancelled():
        return None
    error = task.exception()
    if error is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.debug("task_failed", task=name, error=repr(error))
    return error
