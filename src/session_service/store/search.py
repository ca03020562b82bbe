"""Search: every match of a user's sessions counted exactly, one page returned."""

from __future__ import annotations

from typing import Any

from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import (
    decode_cursor,
    encode_cursor,
    session_from_fields,
)
from session_service.store.records import (
    SearchFilters,
)

SEARCH_CHUNK = 2000


class SearchOps(StoreBase):
    async def search(
        self, user_id: str, filters: SearchFilters, limit: int, cursor: str | None
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        """Every match counted (exact total), one page returned, newest activity first."""
        statuses = list(filters.statuses)
        fixed: list[str | int] = [
            len(statuses),
            *statuses,
            filters.query,
            filters.session_type,
            *("" if v is None else v for v in (
                filters.created_after, filters.created_before,
                filters.updated_after, filters.updated_before,
            )),
            len(filters.metadata),
            *[part for key, value in filters.metadata for part in (f"m:{key}", value)],
        ]  # fmt: skip
        matches: list[tuple[float, str]] = []
        pos, rank, first = 1, 0, True
        while pos:
            reply = await self._read(
                self.scripts.search,
                user_id,
                ["1" if first else "0", SEARCH_CHUNK, pos, rank, *fixed],
            )
            first = False
            pos, rank = int(reply[0]), int(reply[1])
            count_expired(reply[2])
            matches.extend((float(reply[i + 1]), reply[i]) for i in range(3, len(reply), 2))
        matches.sort(reverse=True)
        page_start = 0
        if cursor:
            position = decode_cursor(cursor)
            page_start = next(
                (i for i, (score, sid) in enumerate(matches) if (score, sid) < position),
                len(matches),
            )
        page = matches[page_start : page_start + limit]
        sessions = await self._get_many(user_id, [sid for _, sid in page])
        more = page_start + limit < len(matches)
        next_cursor = encode_cursor(page[-1][0], page[-1][1]) if more and page else None
        return len(matches), sessions, next_cursor

    async def _get_many(self, user_id: str, session_ids: list[str]) -> list[dict[str, Any]]:
        if not session_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hgetall(self.keys.session(user_id, sid))
        results = await pipe.execute()
        return [
            session_from_fields(sid, user_id, fields)
            for sid, fields in zip(session_ids, results, strict=True)
            if fields
        ]
