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
            reply = await self._read(self.scripts.statistics, user_id, StatisticsArgs())
            count_expired(reply[0])
            if int(reply[1]) == 0:  # no expired session left in the indexes
                break
        by_status: dict[str, int] = {}
        oldest: list[int] = []
        newest: list[int] = []
        for i in range(3, len(reply), 4):
            by_status[reply[i]] = int(reply[i + 1])
            if reply[i + 2] != "":
                oldest.append(int(float(reply[i + 2])))
                newest.append(int(float(reply[i + 3])))
        return {
            "total_sessions": sum(by_status.values()),
            "by_status": by_status,
            "total_messages": max(0, int(reply[2])),
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
            reply = await self._write(
                self.scripts.delete_all,
                user_id,
                DeleteAllArgs(slice=DELETE_SLICE, cutoff=cutoff, cursor=cursor),
            )
            count_expired(int(reply[1]))
            deleted += int(reply[0])
            cursor, cutoff = str(reply[2]), int(reply[3])
            if int(reply[4]):
                return deleted
