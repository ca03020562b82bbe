"""Maintenance: expired-entry cleanup, erasure, rate limits, health and shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable

from session_service.store import confirmation
from session_service.store.base import StoreBase, count_expired
from session_service.store.erasure import erase_user
from session_service.store.protocol import PruneArgs


class MaintenanceOps(StoreBase):
    async def cleanup_user(self, user_id: str) -> tuple[int, int]:
        """(expired sessions removed from the indexes, index entries scanned)."""
        return await self._prune(self.keys.base(user_id))

    async def _prune(self, base: str) -> tuple[int, int]:
        """Prune one user in bounded batches, so no single script runs long."""
        removed = 0
        while True:
            args = PruneArgs()
            step = args.decode(await self.scripts.prune(self.client, [base], args))
            count_expired(step.removed)
            removed += step.removed
            if not step.more:
                return removed, step.scanned

    async def cleanup_all(
        self, progress: Callable[[int, int, int], None] | None = None
    ) -> tuple[int, int]:
        """Prune every user's indexes; SCANs every master, never KEYS.

        `progress(users, scanned, removed)` is called after each user (the CLI shows it).
        """
        removed = scanned = users = 0
        async for key in self._scan(self.keys.expiry_pattern()):
            base = self.keys.base_from_expiry_key(key)
            r, s = await self._prune(base)
            removed += r
            scanned += s
            users += 1
            if progress is not None:
                progress(users, scanned, removed)
        # Counts of what it removed, from every node: nothing a read barrier on one
        # node could confirm, and nothing a failover could take back from a client.
        confirmation.mark_confirmed()
        return removed, scanned

    async def erase_user(self, user_id: str) -> tuple[int, int]:
        """(live sessions deleted, keys deleted): every key under the user's tag."""
        return await erase_user(self, user_id)

    async def user_keys(self, user_id: str) -> list[str]:
        return [key async for key in self._scan(self.keys.user_pattern(user_id))]

    async def hit_rate_limit(self, user_id: str, per_minute: int) -> int | None:
        """Seconds to wait when the user is over `per_minute`, else None."""
        now = time.time()
        minute = int(now // 60)
        key = self.keys.rate(user_id, minute)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
        if int(count) > per_minute:
            return max(1, int((minute + 1) * 60 - now + 0.999))
        return None

    async def ping(self) -> float:
        """Round-trip latency in milliseconds (used by /ready only)."""
        started = time.perf_counter()
        await self.client.ping()
        return (time.perf_counter() - started) * 1000

    async def eviction_policy(self) -> str | None:
        try:
            reply = await self.client.config_get("maxmemory-policy")
        except Exception:  # CONFIG may be disabled by ACLs or a managed Redis
            return None
        if isinstance(reply, dict):
            value = reply.get("maxmemory-policy")
            if isinstance(value, dict):  # cluster: {node: {...}}
                value = next(iter(value.values()), None)
            return str(value) if value else None
        return None

    async def close(self) -> None:
        await self.client.aclose()
