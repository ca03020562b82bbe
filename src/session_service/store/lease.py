"""A lease in Redis: one holder at a time across every worker and instance.

Taken with `SET key token NX PX ttl`, so whoever takes it first holds it for
`ttl`; the holder extends it while its work runs, and never releases it early,
so the next holder starts at least `ttl` after this one did.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Lease:
    def __init__(self, client: Any, key: str, ttl_ms: int) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(8)

    async def acquire(self) -> bool:
        return bool(await self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease if it is still ours (it may have expired meanwhile)."""
        if await self.client.get(self.key) != self.token:
            return False
        return bool(await self.client.pexpire(self.key, self.ttl_ms))

    async def run_held(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` while extending the lease every third of its ttl."""

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.ttl_ms / 3000)
                with contextlib.suppress(Exception):  # the next renewal tries again
                    await self.renew()

        keeper = asyncio.create_task(keep())
        try:
            return await work()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
