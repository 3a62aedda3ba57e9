"""One asyncpg pool per process, with every driver failure turned into `DependencyUnavailable`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from secretary.errors import DependencyUnavailable

# What a dead, restarting or unreachable server raises; query errors (bad SQL, constraint) are not in here.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


class Database:
    """Opens connections lazily (a database that is down at start-up only makes requests fail with 503,
    it never stops the service from starting) and bounds every operation by `timeout_s`."""

    def __init__(self, dsn: str, timeout_s: float = 3.0, max_size: int = 10) -> None:
        self._dsn = dsn
        self._timeout = timeout_s
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=self._max_size,
                        timeout=self._timeout,
                        command_timeout=self._timeout,
                        max_inactive_connection_lifetime=60,
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            pool = await self._get_pool()
            async with asyncio.timeout(self._timeout):
                conn = await pool.acquire()
        except _UNAVAILABLE as exc:
            raise DependencyUnavailable("postgresql", type(exc).__name__) from exc
        try:
            yield conn
        except _UNAVAILABLE as exc:
            raise DependencyUnavailable("postgresql", type(exc).__name__) from exc
        finally:
            try:
                await pool.release(conn)
            except _UNAVAILABLE:
                conn.terminate()

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return list(await conn.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as conn:
            status: str = await conn.execute(query, *args)
            return status

    async def ping(self) -> bool:
        try:
            await self.fetchrow("SELECT 1")
        except DependencyUnavailable:
            return False
        return True

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except (TimeoutError, *_UNAVAILABLE):
                pool.terminate()
