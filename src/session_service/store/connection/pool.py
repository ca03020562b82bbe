"""The pool of a standalone or Sentinel client: a request waits for a free connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from redis import exceptions as rx
from redis.asyncio import ConnectionPool

from session_service.store.retries import again_on_connection_error
from session_service.store.wire import hiredis_packing


class WaitForRelease(ConnectionPool):
    """A pool that queues a request for a free connection (up to `wait_timeout`)
    instead of failing it with "Too many connections" (a 503) under contention.

    First come, first served: a released connection is handed to the request that
    has waited longest, and a request that finds others waiting queues behind
    them even if it could take a connection now. Otherwise a request that gives a
    connection back and asks again at once (one with several commands) overtakes
    the waiting ones every time, and they starve into a 503 while later requests
    succeed.

    redis-py's BlockingConnectionPool does the same behind an asyncio.Condition on
    every checkout; here a free connection costs nothing extra, and only a request
    that finds the pool exhausted waits for the next release.
    """

    def __init__(self, *args: Any, wait_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_class = hiredis_packing(self.connection_class)
        self._wait_timeout = wait_timeout
        # Each waiter's future receives the connection handed to it (still in use).
        self._waiters: deque[asyncio.Future[Any]] = deque()

    @property
    def waiting(self) -> int:
        """Requests queued for a connection now."""
        return sum(not waiter.done() for waiter in self._waiters)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py 5.0's checkout: take a connection, make sure it is usable.

        Newer redis-py versions also take a lock, bind the call's arguments for a
        deprecation check and record OpenTelemetry pool gauges on every command
        (7% of a get's CPU in a py-spy profile). Taking a connection has no await,
        so nothing can interleave with it in one event loop.
        """
        connection = await self._take()
        try:
            # Connecting sends nothing of the command yet, so a refused or reset
            # connect is retried here, keeping the connection (and the request's
            # turn); the command itself is never re-sent (store/retries.py).
            await again_on_connection_error(lambda: self._make_ready(connection))
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def _take(self) -> Any:
        if self.can_get_connection() and not self._queued():
            return self.get_available_connection()  # type: ignore[no-untyped-call]
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._wait_timeout):
                return await waiter
        except TimeoutError:
            if _handed(waiter):  # the connection came as the time ran out: use it
                return waiter.result()
            self._forget(waiter)
            raise rx.ConnectionError("No Redis connection became free in time") from None
        except BaseException:
            # Cancelled (its client left): a connection handed to it at the same
            # moment goes to the next in line, or that one would wait for nothing.
            if _handed(waiter):
                self._hand_over(waiter.result())
            else:
                self._forget(waiter)
            raise

    async def _make_ready(self, connection: Any) -> None:
        await self.ensure_connection(connection)
        if closed_by_server(connection):
            # The server closed it while it sat in the pool. redis-py skips this check
            # when maintenance notifications are on (its default), and a write sent on
            # it would fail with an unknown outcome; reconnect before sending anything.
            await connection.disconnect()
            await connection.connect()

    def _queued(self) -> bool:
        """Someone is waiting (the waiters that gave up are dropped from the front)."""
        while self._waiters and self._waiters[0].done():
            self._waiters.popleft()
        return bool(self._waiters)

    def _forget(self, waiter: asyncio.Future[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    async def release(self, connection: Any) -> None:
        # A connection that must reconnect (redis-py >= 6) is closed before it is
        # offered again; the pool's counts change only after that, in one step.
        should_reconnect = getattr(connection, "should_reconnect", None)
        if should_reconnect is not None and should_reconnect():
            await connection.disconnect()
        self._hand_over(connection)

    def _hand_over(self, connection: Any) -> None:
        """To the request waiting longest (it stays in use), else back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)


def _handed(waiter: asyncio.Future[Any]) -> bool:
    return waiter.done() and not waiter.cancelled()


class WaitingConnectionPool(WaitForRelease):
    """The standalone client's pool."""


def closed_by_server(connection: Any) -> bool:
    """The server closed this pooled connection while it was idle (its reader saw EOF)."""
    reader = getattr(connection, "_reader", None)
    return reader is not None and bool(reader.at_eof())
