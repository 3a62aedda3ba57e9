"""Waiting in a test for a state that no event announces (a job another process is running)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest


async def until(condition: Callable[[], bool], within_s: float = 60) -> None:
    """Returns once `condition` holds (checked every 10 ms); fails the test past `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within_s}s")
        await asyncio.sleep(0.01)
