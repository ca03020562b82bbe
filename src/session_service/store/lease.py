"""A lease in Redis: one holder at a time across every worker and instance.

Taken with `SET key token NX PX ttl`, so whoever takes it first holds it for
`ttl`; the holder extends it while its work runs, and never releases it early,
so the next holder starts at least `ttl` after this one did.

A renewal compares and extends in one script: as two commands (GET, then
PEXPIRE) the lease could expire and pass to another process between them, and
the stale holder would extend the newcomer's lease and run alongside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Extend KEYS[1] by ARGV[2] ms only while it still holds ARGV[1] (our token).
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


class Lease:
    def __init__(self, client: Any, key: str, ttl_ms: int) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(8)
        self._renew = client.register_script(RENEW)

    async def acquire(self) -> bool:
        return bool(await self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lease if it is still ours (it may have expired meanwhile)."""
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

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
