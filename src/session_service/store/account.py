"""Operations on everything a user holds: statistics and delete-all.

Both read counters and indexes, never scan: a user may hold 50,000 sessions.
"""

from __future__ import annotations

import logging
from typing import Any

from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import iso
from session_service.store.protocol import DeleteAllArgs, StatisticsArgs

logger = logging.getLogger("session_service.store")

#: Sessions one delete-all slice drops (each slice is one short script).
DELETE_SLICE = 50


class AccountOps(StoreBase):
    async def statistics(self, user_id: str) -> dict[str, Any]:
        """Counts by status, total messages, oldest and newest last activity."""
        while True:
            stats = await self._read(self.scripts.statistics, user_id, StatisticsArgs())
            count_expired(stats.pruned)
            if stats.expired_left == 0:  # no expired session left in the indexes
                break
        by_status: dict[str, int] = {}
        oldest: list[int] = []
        newest: list[int] = []
        for row in stats.statuses:
            by_status[row.status] = row.sessions
            if row.oldest is not None and row.newest is not None:
                oldest.append(int(row.oldest))
                newest.append(int(row.newest))
        return {
            "total_sessions": sum(by_status.values()),
            "by_status": by_status,
            "total_messages": max(0, stats.messages),
            "oldest_activity_at": iso(min(oldest)) if oldest else None,
            "newest_activity_at": iso(max(newest)) if newest else None,
        }

    async def delete_all(self, user_id: str) -> int:
        """Delete every session of the user, in bounded slices; the number deleted.

        Every session that exists when it begins is deleted, archived included; one
        created while it runs may survive. It visits the expiry index once (ZSCAN), so
        a busy client creating sessions cannot keep it going.
        """
        deleted = 0
        cutoff: int | None = None
        cursor = "0"
        while True:
            step = await self._write(
                self.scripts.delete_all,
                user_id,
                DeleteAllArgs(slice=DELETE_SLICE, cutoff=cutoff, cursor=cursor),
            )
            count_expired(step.expired)
            deleted += step.deleted
            cursor, cutoff = step.cursor, step.cutoff
            if step.done:
                return deleted
