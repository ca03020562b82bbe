"""The pool of a standalone or Sentinel client: a request waits for a free connection."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from redis import exceptions as rx
from redis.asyncio import ConnectionPool

from session_service.store.retries import again_on_connection_error
from session_service.store.wire import hiredis_packing


class WaitForRelease(ConnectionPool):
    """A pool that queues a request for a free connection (up to `wait_timeout`)
    instead of failing it with "Too many connections" (a 503) under contention.

    redis-py's BlockingConnectionPool does the same behind an asyncio.Condition on
    every checkout; here a free connection costs nothing extra, and only a request
    that finds the pool exhausted waits for the next release.
    """

    def __init__(self, *args: Any, wait_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_class = hiredis_packing(self.connection_class)
        self._wait_timeout = wait_timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py 5.0's checkout: take a connection, make sure it is usable.

        Newer redis-py versions also take a lock, bind the call's arguments for a
        deprecation check and record OpenTelemetry pool gauges on every command
        (7% of a get's CPU in a py-spy profile). Taking a connection has no await,
        so nothing can interleave with it in one event loop.
        """
        if not self.can_get_connection():
            await self._wait_for_release()
        # Connecting sends nothing of the command yet, so a refused or reset connect
        # is retried here; the command itself is never re-sent (store/retries.py).
        return await again_on_connection_error(self._checkout)

    async def _checkout(self) -> Any:
        connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        if closed_by_server(connection):
            # The server closed it while it sat in the pool. redis-py skips this check
            # when maintenance notifications are on (its default), and a write sent on
            # it would fail with an unknown outcome; reconnect before sending anything.
            try:
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def _wait_for_release(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout
        while not self.can_get_connection():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise rx.ConnectionError("No Redis connection became free in time") from None
            finally:
                if not waiter.done():
                    waiter.cancel()

    async def release(self, connection: Any) -> None:
        # A connection that must reconnect (redis-py >= 6) is closed before it is
        # offered again; the pool's counts change only after that, in one step.
        should_reconnect = getattr(connection, "should_reconnect", None)
        if should_reconnect is not None and should_reconnect():
            await connection.disconnect()
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


class WaitingConnectionPool(WaitForRelease):
    """The standalone client's pool."""


def closed_by_server(connection: Any) -> bool:
    """The server closed this pooled connection while it was idle (its reader saw EOF)."""
    reader = getattr(connection, "_reader", None)
    return reader is not None and bool(reader.at_eof())
