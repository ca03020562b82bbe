"""A list page deep inside a tie set of last-activity times must not stall Redis.

Sessions that share one millisecond of last activity (an import of records with
coarse timestamps) once made list.lua read and sort every row of the tie set before
the offset: at the documented 50,000 sessions per user, spread over the five
statuses, one page at offset 10,000 read and sorted 50,000 rows in one script (158 ms
for 20,400 rows over two statuses). list.lua now finds the page's first row inside
the tie set by rank, as a k-th of the indexes' sorted runs. Measured as
test_branch_bounds measures a stall; exactness at every offset is in
tests/api/test_list_pages.py.
"""

from __future__ import annotations

import time

import httpx
import pytest
from redis.asyncio import Redis

from session_service.domain.status import ALL_STATUSES
from session_service.store.keys import Keys
from tests.conftest import user
from tests.store.stalls import stall_free

KEYS = Keys("fms")
SESSIONS = 50_000  # the documented largest number per user


async def _seed_tie_set(redis: Redis) -> int:
    """SESSIONS sessions of user u1, spread over every status, all last active in the same
    millisecond, written straight in the store's layout; that millisecond."""
    now = int(time.time() * 1000)
    base = KEYS.base("u1")
    for start in range(0, SESSIONS, 5000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, start + 5000):
            st = ALL_STATUSES[i % len(ALL_STATUSES)]
            sid = f"{i:032x}"
            fields = {"v": 1, "st": st, "ca": now, "ua": now, "la": now, "ea": 0, "to": 3_600_000}
            pipe.hset(f"{base}s:{sid}", mapping={**fields, "mc": 0})
            pipe.zadd(f"{base}z:{st}", {sid: now})
            pipe.zadd(f"{base}x", {sid: "+inf"})
        await pipe.execute()
    return now


@pytest.mark.slow
async def test_a_list_page_deep_in_a_tie_set_never_stalls_redis(
    client: httpx.AsyncClient, redis: Redis, redis_url: str
) -> None:
    async def page(_: int) -> httpx.Response:
        params = {"offset": 10_000, "limit": 100, "include_archived": "true"}
        return await client.get("/api/v1/sessions", params=params, headers=user())

    _, listed = await stall_free(
        redis, redis_url, lambda: _seed_tie_set(redis), page, reads_only=True
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == SESSIONS
    ids = [s["session_id"] for s in listed.json()["sessions"]]
    assert len(ids) == 100 and ids == sorted(ids, reverse=True)
