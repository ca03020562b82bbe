"""List pages are exact at any offset; only writes inside the filter move them (issue 11)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.domain.ids import new_session_id
from session_service.domain.status import ALL_STATUSES
from session_service.store.keys import Keys
from session_service.store.protocol import PruneArgs
from session_service.store.sessions import NewSession, SessionStore
from tests.conftest import ClientFactory, user
from tests.helpers import API, epoch_ms, get_json, redis_now_ms, user_keys, wait_past

KEYS = Keys("fms")
FILTERS: list[dict[str, Any]] = [
    {},
    {"include_archived": "true"},
    {"status": ["active"]},
    {"status": ["active", "completed"]},
    {"status": ["completed", "abandoned", "in_progress"]},
    {"status": ["archived", "active"]},
]


def _store(client: httpx.AsyncClient) -> SessionStore:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    return store


async def _page(client: httpx.AsyncClient, params: dict[str, Any]) -> dict[str, Any]:
    page: dict[str, Any] = await get_json(client, API, params=params)
    return page


async def _pages(client: httpx.AsyncClient, params: dict[str, Any], limit: int) -> list[str]:
    """Every page at offsets 0, limit, 2*limit, ... of one filter."""
    ids: list[str] = []
    while True:
        body = await _page(client, {**params, "limit": limit, "offset": len(ids)})
        ids += [s["session_id"] for s in body["sessions"]]
        if len(body["sessions"]) < limit:
            return ids


async def _reference(redis: Redis, statuses: list[str]) -> list[str]:
    """The order list promises, computed from the indexes: activity desc, then id desc."""
    rows: list[tuple[float, str]] = []
    for status in statuses:
        rows += [
            (score, sid)
            for sid, score in await redis.zrange(
                user_keys("u1").status_index(status), 0, -1, withscores=True
            )
        ]
    return [sid for _, sid in sorted(rows, reverse=True)]


def _statuses(params: dict[str, Any]) -> list[str]:
    if "status" in params:
        return list(params["status"])
    if params.get("include_archived"):
        return list(ALL_STATUSES)
    return [s for s in ALL_STATUSES if s != "archived"]


async def _mixed_user(store: SessionStore, n: int) -> list[str]:
    """n sessions over every status (a fifth each)."""
    ids = [new_session_id() for _ in range(n)]
    await store.create_many("u1", [NewSession.build(sid, 3_600_000) for sid in ids])
    targets = ["in_progress", "completed", "abandoned", "archived"]
    for start in range(0, n, 200):
        await asyncio.gather(
            *(
                store.update("u1", sid, status=targets[i % 5 - 1])
                for i, sid in enumerate(ids[start : start + 200], start)
                if i % 5
            )
        )
    return ids


async def test_every_filter_pages_through_every_session_once_in_the_promised_order(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=5_000) as client:
        ids = await _mixed_user(_store(client), 400)
        for params in FILTERS:
            expected = await _reference(redis, _statuses(params))
            assert await _pages(client, params, 7) == expected, params
            assert (await _page(client, params))["total"] == len(expected)
        assert len(await _reference(redis, list(ALL_STATUSES))) == len(ids)


@pytest.mark.slow
async def test_large_offsets_are_exact_at_12000_sessions(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=20_000) as client:
        await _mixed_user(_store(client), 12_000)
        for params in FILTERS:
            expected = await _reference(redis, _statuses(params))
            for offset in (0, 1, 999, 5_000, 9_950, 10_000):
                body = await _page(client, {**params, "limit": 100, "offset": offset})
                got = [s["session_id"] for s in body["sessions"]]
                assert got == expected[offset : offset + 100], (params, offset)
                assert body["total"] == len(expected)


async def test_writes_to_sessions_outside_the_filter_never_move_its_pages(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=5_000) as client:
        store = _store(client)
        ids = await _mixed_user(store, 300)
        filters = [{"status": ["active"]}, {"status": ["active", "abandoned"]}]
        before = [await _pages(client, params, 9) for params in filters]
        outside = [sid for i, sid in enumerate(ids) if i % 5 in (1, 2)]  # in_progress, completed
        for sid in outside:
            await store.heartbeat("u1", sid)
            await store.append("u1", sid, "user", "hello")
        for sid in outside[::2]:
            await store.update("u1", sid, status="archived")
        assert [await _pages(client, params, 9) for params in filters] == before


async def test_sessions_expired_beyond_one_prune_batch_are_never_listed_or_counted(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=5_000) as client:
        store = _store(client)
        live = [new_session_id() for _ in range(5)]
        await store.create_many("u1", [NewSession.build(sid, 3_600_000) for sid in live])
        short = [new_session_id() for _ in range(350)]
        await store.create_many("u1", [NewSession.build(sid, 2_000) for sid in short])
        last = await store.get("u1", short[-1])
        await wait_past(redis, epoch_ms(last["expires_at"]))
        # Creates prune too, so count what is still indexed after every deadline passed.
        pending = await redis.zcount(KEYS.expiry("u1"), "-inf", f"({await redis_now_ms(redis)}")
        assert pending > 100
        # One script call prunes a bounded batch, never everything at once.
        args = PruneArgs()
        pruned = args.decode(await store.scripts.prune(redis, [KEYS.base("u1")], args))
        assert (pruned.removed, pruned.more) == (100, True)
        body = await _page(client, {"limit": 100})
        assert body["total"] == 5
        assert sorted(s["session_id"] for s in body["sessions"]) == sorted(live)
        assert await redis.zcard(KEYS.expiry("u1")) == 5


async def test_pages_and_walks_stay_exact_when_many_sessions_share_one_millisecond(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=5_000) as client:
        ids = await _mixed_user(_store(client), 600)
        # A bulk load can give hundreds of sessions the same activity time (and a legacy
        # import a fractional one): rewrite two thirds of the index scores that way.
        for status in ALL_STATUSES:
            key = user_keys("u1").status_index(status)
            rows = await redis.zrange(key, 0, -1)
            if rows:
                await redis.zadd(key, {sid: 1_700_000_000_000 + (i % 3) * 0.5 for i, sid in
                                       enumerate(rows) if i % 3})  # fmt: skip
        for params in FILTERS:
            expected = await _reference(redis, _statuses(params))
            assert await _pages(client, params, 13) == expected, params
        walked: list[str] = []
        cursor = None
        while True:
            body = {"limit": 11, "include_archived": True, "cursor": cursor}
            page = (await client.post(f"{API}/search", json=body, headers=user())).json()
            walked += [s["session_id"] for s in page["sessions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert walked == await _reference(redis, list(ALL_STATUSES))
        assert sorted(walked) == sorted(ids)


async def test_every_offset_inside_tie_sets_is_exact(
    make_client: ClientFactory, redis: Redis
) -> None:
    """A page may start anywhere inside a tie set spread over several indexes: every
    offset and a few limits, with whole-millisecond and fractional ties side by side."""
    async with make_client(max_sessions_per_user=5_000) as client:
        await _mixed_user(_store(client), 240)
        for status in ALL_STATUSES:
            key = user_keys("u1").status_index(status)
            rows = await redis.zrange(key, 0, -1)
            # Three ties: one millisecond, the same plus a fraction, and an older one.
            scores = (1_700_000_000_000, 1_700_000_000_000.25, 1_699_999_999_999)
            await redis.zadd(key, {sid: scores[i % 4] if i % 4 < 3 else 1_700_000_000_001
                                   for i, sid in enumerate(rows)})  # fmt: skip
        for params in ({"include_archived": "true"}, {"status": ["active", "archived"]}):
            expected = await _reference(redis, _statuses(params))
            for limit in (1, 2, 5):
                for offset in range(len(expected) + 1):
                    body = await _page(client, {**params, "limit": limit, "offset": offset})
                    got = [s["session_id"] for s in body["sessions"]]
                    assert got == expected[offset : offset + limit], (params, limit, offset)
