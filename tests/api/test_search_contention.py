"""Search walks under contention (issue 20, defect 1, and the suspected tie set).

Several walks of one user at once must not evict each other into endless restarts:
each walk completes exactly, or ends with a clear 409 `search_expired`, and the
scripts they run stay near what the walks need. A cursor whose session moved away
from its millisecond must not make one script read every session of that
millisecond (an import gives thousands the same activity).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_legacy.records import LegacySession
from session_legacy.writer import import_session
from session_service.domain.ids import new_session_id
from session_service.store.keys import Keys
from session_service.store.records import SearchFilters
from session_service.store.search import SCAN_BUDGET, search_args
from session_service.store.sessions import NewSession, SessionStore
from tests.conftest import ClientFactory, user
from tests.helpers import API, user_keys

SEARCH = f"{API}/search"
N = 3_000
PAGE = 100
KEYS = Keys("fms")


@pytest.fixture
def fast_path() -> bool:
    """One dispatcher: the cost is in Redis (test_fast_path.py compares the two)."""
    return True


async def _script_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


async def _walk(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    """('done', ids) for a walk read to its end, ('expired', ids so far) for a 409."""
    seen: list[str] = []
    cursor = None
    while True:
        response = await client.post(SEARCH, json={"limit": PAGE, "cursor": cursor}, headers=user())
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "search_expired", body
            assert "first page" in body["detail"]
            return "expired", seen
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == N
        seen += [s["session_id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return "done", seen


@pytest.mark.parametrize("walks", [6, 10])
async def test_concurrent_walks_of_one_user_complete_or_fail_fast(
    make_client: ClientFactory, redis: Redis, walks: int
) -> None:
    async with make_client(max_sessions_per_user=N + 100) as client:
        store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
        ids = [new_session_id() for _ in range(N)]
        await store.create_many("u1", [NewSession.build(sid, 3_600_000) for sid in ids])
        await redis.config_resetstat()
        # What the walks need: a scan of N sessions in slices, then N / PAGE pages each.
        # Without thrashing they stay far below this; with it they never end.
        needed = walks * (N // SCAN_BUDGET + 2 + N // PAGE + 1)
        bound = 3 * needed
        running = asyncio.gather(*(_walk(client) for _ in range(walks)))
        thrashing = False
        while not running.done():
            if await _script_calls(redis) > bound:
                thrashing = True
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                break
            await asyncio.wait({running}, timeout=0.05)
        calls = await _script_calls(redis)
        print(f"{walks} walks over {N} sessions: {calls} script calls (bound {bound})")
        assert not thrashing, f"{calls} script calls and the walks still ran"
        outcomes = running.result()
        for outcome, seen in outcomes:
            assert len(seen) == len(set(seen)), "a walk repeated an id"
            if outcome == "done":
                assert sorted(seen) == sorted(ids)
        assert any(outcome == "done" for outcome, _ in outcomes)
        assert calls <= bound


async def test_a_scan_cursor_in_a_large_tie_reads_a_bounded_slice(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=N + 100) as client:
        store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
        moment = (await store.client.time())[0] * 1000 - 60_000
        ids = sorted(new_session_id() for _ in range(N))
        for sid in ids:  # an import gives every session the same activity millisecond
            legacy = LegacySession(
                session_id=sid, user_id="u1", status="active", title="tied", client_id=None,
                session_type="troubleshooting", created_ms=moment, updated_ms=moment,
                last_activity_ms=moment, timeout_ms=3_600_000, metadata={}, context={},
                messages=[],
            )  # fmt: skip
            assert await import_session(store, legacy, 3_600_000) is None
        fixed = search_args(SearchFilters(statuses=["active"]))

        async def scan(walk: str, score: str, sid: str) -> Any:
            args = replace(fixed, mode="scan", walk=walk, cursor_score=score, cursor_sid=sid)
            return await store._read(store.scripts.search, "u1", args)

        snapshot = user_keys("u1").search_snapshot("tiewalk")
        first = await scan("tiewalk", "", "")
        assert not first.done and first.score == str(moment)
        held = await redis.zcard(snapshot)
        # The cursor's session moves on (a heartbeat between two scan calls of a walk).
        cursor_sid = first.session_id
        response = await client.post(f"{API}/{cursor_sid}/heartbeat", headers=user())
        assert response.status_code == 200
        await scan("tiewalk", first.score, cursor_sid)
        added = await redis.zcard(snapshot) - held
        assert 0 < added <= SCAN_BUDGET, f"one scan call read {added} sessions of one millisecond"
        # The same cursor on a page call reads the rows just below it, newest first.
        reply = first
        while not reply.done:
            reply = await scan("tiewalk", reply.score, reply.session_id)
        args = replace(
            fixed, mode="page", walk="tiewalk", budget=SCAN_BUDGET, want=5,
            cursor_score=first.score, cursor_sid=cursor_sid,
        )  # fmt: skip
        page = await store._read(store.scripts.search, "u1", args)
        below = [sid for sid in reversed(ids) if sid < cursor_sid][:5]
        assert [row.session_id for row in page.rows] == below
