"""Which providers are fit to serve: a failed provider sits out a cool-down and is probed in the background.

One `ProviderHealth` per process (the `ProviderFactory` owns it), shared by every chain of every domain, so
a provider that just failed one call is not tried again on the next turn of every other call. Providers are
keyed by kind, name, endpoint and key variable: one domain's bad API key does not bench another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import structlog

from secretary.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[object]]


def retry_after_s(exc: BaseException) -> float | None:
    """The server's Retry-After (seconds or an HTTP date) carried by an SDK or aiohttp error, if any."""
    value: Any = getattr(exc, "retry_after_s", None)
    if isinstance(value, int | float):
        return float(value)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


@dataclass
class _Bench:
    reason: str
    until: float
    probe: Probe | None
    task: asyncio.Task[None] | None = None


class ProviderHealth:
    def __init__(
        self,
        cool_down_s: float,
        probe_interval_s: float,
        probe_timeout_s: float,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._on_failure = on_failure
        self._cool_down = cool_down_s
        self._interval = probe_interval_s
        self._probe_timeout = probe_timeout_s
        self._benched: dict[str, _Bench] = {}
        self._watches: set[asyncio.Task[None]] = set()

    def available(self, key: str) -> bool:
        return key not in self._benched

    def reason(self, key: str) -> str | None:
        """Why `key` is benched; None when it is not."""
        bench = self._benched.get(key)
        return None if bench is None else bench.reason

    def unhealthy(self) -> dict[str, str]:
        """Benched providers and why (for /health and logs)."""
        return {key: bench.reason for key, bench in self._benched.items()}

    def succeeded(self, key: str) -> None:
        bench = self._benched.pop(key, None)
        if bench is not None and bench.task is not None:
            bench.task.cancel()

    def failed(self, key: str, exc: BaseException, probe: Probe | None = None) -> None:
        """Bench `key` for the cool-down (or the server's Retry-After when longer) and start probing it."""
        loop = asyncio.get_running_loop()
        if self._on_failure is not None:
            self._on_failure(key)
        wait = max(self._cool_down, retry_after_s(exc) or 0.0)
        reason = describe(exc)
        bench = self._benched.get(key)
        if bench is not None:
            bench.until = max(bench.until, loop.time() + wait)
            bench.reason = reason
            return
        bench = _Bench(reason, loop.time() + wait, probe)
        self._benched[key] = bench
        bench.task = loop.create_task(self._recover(key, bench), name=f"probe {key}")
        log.warning("provider_benched", provider=key, reason=reason, seconds=round(wait, 1))

    def watch(self, key: str, request: asyncio.Future[Any], timeout_s: float, probe: Probe | None = None) -> None:
        """Let a request nobody waits for any more (it lost a hedge race) finish in the background: if it
        fails or misses `timeout_s`, the provider is benched like any other failure."""

        async def judge() -> None:
            try:
                async with asyncio.timeout(max(0.0, timeout_s)):
                    await request
            except TimeoutError as exc:
                request.cancel()
                self.failed(key, exc, probe)
            except Exception as exc:
                self.failed(key, exc, probe)

        task = asyncio.get_running_loop().create_task(judge(), name=f"watch {key}")
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    async def _recover(self, key: str, bench: _Bench) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, bench.until - loop.time()))
            if bench.until > loop.time():
                continue  # failed again meanwhile: the cool-down was extended
            if bench.probe is None:
                break  # nothing to probe with: the next real request is the test
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await bench.probe()
                break
            except Exception as exc:
                bench.reason = "probe: " + describe(exc)
                bench.until = loop.time() + self._interval
        if self._benched.get(key) is bench:
            del self._benched[key]
            log.info("provider_recovered", provider=key)

    async def close(self) -> None:
        tasks = [b.task for b in self._benched.values() if b.task is not None] + list(self._watches)
        self._benched.clear()
        await cancel_and_wait(*tasks)


def describe(exc: BaseException) -> str:
    """A short, secret-free reason: the error type and the status code or message (never request headers)."""
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    name = type(exc).__name__
    if isinstance(status, int):
        return f"{name} {status}"
    return f"{name}: {text}" if text else name
