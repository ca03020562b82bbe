"""Search: every match of a user's sessions counted exactly, one page returned."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from session_service.domain.text import search_fold
from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import (
    decode_cursor,
    dump_json,
    encode_cursor,
    session_from_fields,
)
from session_service.store.protocol import SearchArgs
from session_service.store.records import (
    SearchFilters,
)

SEARCH_CHUNK = 2000


def ms(value: datetime | None) -> int | None:
    """A datetime as stored: milliseconds since the epoch (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


class SearchOps(StoreBase):
    async def search(
        self, user_id: str, filters: SearchFilters, limit: int, cursor: str | None
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        """Every match counted (exact total), one page returned, newest activity first."""
        args = SearchArgs(
            prune=True,
            budget=SEARCH_CHUNK,
            status_pos=1,
            rank=0,
            statuses=tuple(filters.statuses),
            query=search_fold(filters.query),
            session_type=filters.session_type,
            created_after=ms(filters.created_after),
            created_before=ms(filters.created_before),
            updated_after=ms(filters.updated_after),
            updated_before=ms(filters.updated_before),
            metadata=tuple((f"m:{k}", dump_json(v)) for k, v in (filters.metadata or {}).items()),
        )
        matches: list[tuple[float, str]] = []
        while True:
            reply = await self._read(self.scripts.search, user_id, args)
            count_expired(reply[2])
            matches.extend((float(reply[i + 1]), reply[i]) for i in range(3, len(reply), 2))
            if int(reply[0]) == 0:
                break
            args = replace(args, prune=False, status_pos=int(reply[0]), rank=int(reply[1]))
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
