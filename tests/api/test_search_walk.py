"""Search walks at 50,000 sessions while others write (issue 11, item 2).

A walk is a first page and the cursor pages after it. Its guarantee: every session
that exists for the whole walk and matches throughout appears exactly once (also
when it is heartbeated, updated or moves status meanwhile), and no walk repeats an id.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from session_service.domain.ids import new_session_id
from session_service.store.sessions import NewSession, SessionStore
from tests.conftest import ClientFactory, user
from tests.helpers import API

SEARCH = f"{API}/search"
N = 50_000


@pytest.fixture
def fast_path() -> bool:
    """One dispatcher for these walks: their cost is in Redis and in the number of
    requests, and tests/api/test_fast_path.py proves both dispatchers answer alike."""
    return True


async def _walk(client: httpx.AsyncClient, body: dict[str, Any], between: Any) -> tuple[
    list[str], list[int]
]:  # fmt: skip
    """Every page of one walk; `between()` runs after each page."""
    seen: list[str] = []
    totals: list[int] = []
    cursor = None
    while True:
        response = await client.post(SEARCH, json={**body, "cursor": cursor}, headers=user())
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [s["session_id"] for s in page["sessions"]]
        totals.append(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, totals
        await between()


@pytest.mark.slow
async def test_a_walk_of_50000_sessions_is_exact_while_others_create_heartbeat_and_delete(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=N + 5_000) as client:
        store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
        initial = [new_session_id() for _ in range(N)]
        await store.create_many(
            "u1", [NewSession.build(sid, 3_600_000, title=f"walk {sid[-6:]}") for sid in initial]
        )
        rng = random.Random(11)
        touched: set[str] = set()
        deleted: set[str] = set()
        created: list[str] = []

        async def write(kind: int) -> None:
            sid = rng.choice(initial)
            if kind == 0:
                response = await client.post(f"{API}/{sid}/heartbeat", headers=user())
                touched.add(sid)
            elif kind == 1:
                response = await client.patch(
                    f"{API}/{sid}", json={"status": "completed"}, headers=user()
                )
                touched.add(sid)
            elif kind == 2:
                response = await client.post(
                    f"{API}/{sid}/messages", json={"role": "user", "content": "hi"},
                    headers=user(),
                )  # fmt: skip
                touched.add(sid)
            elif kind == 3:
                deleted.add(sid)
                response = await client.delete(f"{API}/{sid}", headers=user())
            else:
                response = await client.post(API, json={"title": "walk new"}, headers=user())
                created.append(response.json()["session_id"])
            # 409: completed twice or an append to a deleted one; 404: deleted already.
            assert response.status_code in (200, 201, 204, 404, 409), response.text

        stop = asyncio.Event()

        async def writer() -> None:
            while not stop.is_set():
                await write(rng.randrange(5))

        async def between_pages() -> None:
            await asyncio.gather(*(write(kind) for kind in range(5)))

        writers = [asyncio.create_task(writer()) for _ in range(2)]
        try:
            seen, totals = await _walk(client, {"limit": 100}, between_pages)
        finally:
            stop.set()
            await asyncio.gather(*writers)

        assert len(seen) == len(set(seen)), "a walk repeated an id"
        assert N - len(deleted) <= totals[0] <= N + len(created)
        assert set(totals) == {totals[0]}, "a walk counts the matches it started with"
        assert len(touched) > 500 and len(deleted) > 100 and len(created) > 100
        kept = set(initial) - deleted
        missing = kept - set(seen)
        assert not missing, f"{len(missing)} sessions that lived through the walk were missed"
        unchanged = kept - touched
        assert unchanged <= set(seen)
        assert set(seen) <= set(initial) | set(created)


@pytest.mark.slow
async def test_a_filtered_walk_resumes_after_its_cursor_with_small_pages(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=5_000) as client:
        store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
        ids = [new_session_id() for _ in range(3_000)]
        await store.create_many(
            "u1",
            [NewSession.build(sid, 3_600_000, title=f"{'db' if i % 3 else 'cpu'} timeout {i}")
             for i, sid in enumerate(ids)],
        )  # fmt: skip
        wanted = {sid for i, sid in enumerate(ids) if i % 3}
        rng = random.Random(5)

        async def heartbeat_some() -> None:
            for sid in rng.sample(ids, 20):
                response = await client.post(f"{API}/{sid}/heartbeat", headers=user())
                assert response.status_code == 200

        seen, totals = await _walk(client, {"query": "db", "limit": 37}, heartbeat_some)
        assert sorted(seen) == sorted(wanted)
        assert set(totals) == {len(wanted)}


async def test_a_cursor_outliving_its_snapshot_is_409_and_the_walk_starts_again(
    make_client: ClientFactory,
) -> None:
    async with make_client() as client:
        ids = []
        for i in range(30):
            response = await client.post(API, json={"title": f"s{i}"}, headers=user())
            ids.append(response.json()["session_id"])
        first = (await client.post(SEARCH, json={"limit": 10}, headers=user())).json()
        # Newer walks of the same user drop the oldest snapshot (a bounded number is kept).
        for _ in range(5):
            await client.post(SEARCH, json={"limit": 1}, headers=user())
        response = await client.post(
            SEARCH, json={"limit": 10, "cursor": first["next_cursor"]}, headers=user()
        )
        assert response.status_code == 409
        assert response.json()["code"] == "search_expired"
        assert "first page" in response.json()["detail"]
        seen, totals = await _walk(client, {"limit": 10}, _nothing)
        assert sorted(seen) == sorted(ids)
        assert totals == [30, 30, 30]


async def _nothing() -> None:
    return None
