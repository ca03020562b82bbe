"""When the service may send a Redis command again: only when it cannot run twice.

redis-py's own Retry re-sends a command after a `ConnectionError`, also when
Redis ran it and only the reply was lost; a re-sent append then stores its
message twice, a re-sent delete answers 404. So every client is built with a
Retry that never re-sends (`never_resend`), and the service retries only where
running twice is harmless:

- opening a connection (the pools in connection/pool.py): nothing of the command has
  left yet; a stale pooled connection is detected before sending (redis-py's
  `ensure_connection`) and replaced;
- pure reads (`retry_reads`): reading twice changes nothing.

A write whose connection fails after it was sent answers 503
`storage_unavailable`: it may or may not have been applied, and the client's
retry with the same Idempotency-Key resolves it exactly once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as rx
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

T = TypeVar("T")

#: The pauses before each retry (seconds): three tries in all. A timeout is never
#: retried, so a hung server costs one REDIS_TIMEOUT_SECONDS, not three.
PAUSES = (0.02, 0.08)


def never_resend() -> Retry:
    """redis-py's retry policy for every client: a command is sent at most once."""
    return Retry(NoBackoff(), 0, supported_errors=(rx.ConnectionError,))


async def again_on_connection_error(
    call: Callable[[], Awaitable[T]], pauses: tuple[float, ...] = PAUSES
) -> T:
    """`call()`, retried after a dropped or refused connection; only for calls that
    cannot apply anything twice."""
    for pause in pauses:
        try:
            return await call()
        except rx.ConnectionError:
            await asyncio.sleep(pause)
    return await call()


def _retrying(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The first try without building a retry loop: reads are hot, failures rare.
        try:
            return await method(*args, **kwargs)
        except rx.ConnectionError:
            await asyncio.sleep(PAUSES[0])
        return await again_on_connection_error(lambda: method(*args, **kwargs), PAUSES[1:])

    return wrapper


def retry_reads(*names: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: these methods only read, so a dropped connection is retried.

    Every other method is sent once: a method added later is safe by default.
    """

    def decorate(cls: type[T]) -> type[T]:
        for name in names:
            setattr(cls, name, _retrying(getattr(cls, name)))
        return cls

    return decorate
