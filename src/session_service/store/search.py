"""Search walks: a snapshot of the matches per walk, read page by page from cursors.

The first page scans the user's status indexes in bounded slices into a snapshot
(see lua/search.lua); its cursor names that snapshot, so the pages after it walk
one fixed order (last activity at the scan, newest first) however sessions are
created, heartbeated or deleted meanwhile.

A user keeps SNAPSHOTS_PER_USER walks: a walk joins them when its scan completes,
dropping the oldest, so walks running at once never drop each other's scans
half-way. A cursor whose snapshot is gone (expired, or dropped for newer walks)
answers `SearchExpired`: the walk starts again from its first page. Nothing
restarts by itself, so many walks at once cost what they read, never more: a
first page scans at most FIRST_PAGE_SCANS times (its fresh snapshot can be
dropped between its scan and its page only by as many newer walks completing).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from session_service import errors
from session_service.domain.text import search_fold
from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import (
    decode_cursor,
    dump_json,
    encode_cursor,
    session_from_fields,
)
from session_service.store.protocol import SearchArgs
from session_service.store.records import SearchFilters
from session_service.store.replies import Gone, ScanStep, SearchPage

# Sessions examined per scan call and snapshot rows per page call: a few ms each.
SCAN_BUDGET = 500
PAGE_BUDGET = 500
SNAPSHOT_TTL_MS = 10 * 60 * 1000
SNAPSHOTS_PER_USER = 4
FIRST_PAGE_SCANS = 2

Run = Callable[[SearchArgs], Awaitable[ScanStep | SearchPage | Gone]]


def ms(value: datetime | None) -> int | None:
    """A datetime as stored: milliseconds since the epoch (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def search_args(filters: SearchFilters) -> SearchArgs:
    """The filter part of every call of one walk; the walk fills in the rest."""
    return SearchArgs(
        # The walk's own part, replaced on every call (Walk._args).
        mode="scan",
        walk="",
        budget=SCAN_BUDGET,
        want=0,
        cursor_score="",
        cursor_sid="",
        # The filters, the same on every call of the walk.
        ttl_ms=SNAPSHOT_TTL_MS,
        max_walks=SNAPSHOTS_PER_USER,
        statuses=tuple(filters.statuses),
        query=search_fold(filters.query),
        session_type=filters.session_type,
        created_after=ms(filters.created_after),
        created_before=ms(filters.created_before),
        updated_after=ms(filters.updated_after),
        updated_before=ms(filters.updated_before),
        metadata=tuple((f"m:{k}", dump_json(v)) for k, v in (filters.metadata or {}).items()),
    )


class Walk:
    """One search request: scan a snapshot if needed, then read one page of it."""

    def __init__(self, run: Run, filters: SearchFilters, count_expired: Callable[[int], None]):
        self.run = run
        self.fixed = search_args(filters)
        self.count_expired = count_expired

    def _args(self, mode: str, walk: str, want: int, score: str, sid: str) -> SearchArgs:
        budget = SCAN_BUDGET if mode == "scan" else PAGE_BUDGET
        return replace(
            self.fixed,
            mode=mode,
            walk=walk,
            budget=budget,
            want=want,
            cursor_score=score,
            cursor_sid=sid,
        )

    async def scan(self) -> str:
        walk = secrets.token_hex(8)
        score = sid = ""
        while True:
            step = await self.run(self._args("scan", walk, 0, score, sid))
            if not isinstance(step, ScanStep):  # never dropped: its snapshot expired
                raise errors.SearchExpired()
            self.count_expired(step.pruned)
            if step.done:
                return walk
            score, sid = step.score, step.session_id

    async def page(
        self, user_id: str, limit: int, cursor: str | None, decode: Callable[..., dict[str, Any]]
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        start = decode_cursor(cursor) if cursor else ("", "", "")
        walk, score, sid = start
        # A first page (or a cursor of a release before snapshots) scans its own.
        scans = 0
        if not walk:
            walk, scans = await self.scan(), 1
        sessions: list[dict[str, Any]] = []
        while True:
            page = await self.run(self._args("page", walk, limit - len(sessions), score, sid))
            if not isinstance(page, SearchPage):
                if scans == 0 or scans >= FIRST_PAGE_SCANS:
                    raise errors.SearchExpired()
                # Dropped by newer walks between its scan and this page: once more.
                walk, scans = await self.scan(), scans + 1
                _, score, sid = start
                sessions = []
                continue
            score, sid = page.score, page.session_id
            sessions += [decode(row.session_id, user_id, row.fields) for row in page.rows]
            if page.done:
                return page.total, sessions, None
            if len(sessions) >= limit:
                return page.total, sessions, encode_cursor(walk, score, sid)


class SearchOps(StoreBase):
    async def search(
        self, user_id: str, filters: SearchFilters, limit: int, cursor: str | None
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        """One page of a walk over a snapshot of the matches (see the module docstring)."""

        async def run(args: SearchArgs) -> ScanStep | SearchPage | Gone:
            # Safe to run again: a scan slice re-adds the same members, and a page
            # re-reads the same rows (after its last page the snapshot is gone: 409).
            return await self._read(self.scripts.search, user_id, args)

        return await Walk(run, filters, count_expired).page(
            user_id, limit, cursor, session_from_fields
        )
