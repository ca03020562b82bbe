"""SESSION_LIMIT_POLICY=evict_oldest: a create at the limit makes room (issue 12, item 5)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.observability.logging import user_ref
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, epoch_ms, sample, scrape, wait_past

EVICTING = {"session_limit_policy": "evict_oldest"}
EVICTED = "fm_session_sessions_total"


async def _later() -> None:
    """Activity is kept in milliseconds: make the next step a later one."""
    await asyncio.sleep(0.003)


async def _evicted(client: httpx.AsyncClient) -> float:
    return sample(await scrape(client), EVICTED, event="evicted")


async def _live(client: httpx.AsyncClient, user_id: str = "u1") -> set[str]:
    response = await client.get(
        API, params={"include_archived": "true", "limit": 100}, headers=user(user_id)
    )
    body = response.json()
    assert body["total"] == len(body["sessions"])
    return {s["session_id"] for s in body["sessions"]}


async def _sessions(client: httpx.AsyncClient, n: int, **body: Any) -> list[str]:
    sids = []
    for _ in range(n):
        sids.append((await create_session(client, **body))["session_id"])
        await _later()
    return sids


async def test_reject_is_the_default(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=2) as client:
        sids = await _sessions(client, 2)
        response = await client.post(API, json={}, headers=user())
        assert response.status_code == 409
        assert response.json()["code"] == "session_limit_reached"
        assert await _live(client) == set(sids)


async def test_a_create_at_the_limit_evicts_the_least_recently_active(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=3, **EVICTING) as client:
        a, b, c = await _sessions(client, 3)
        await client.post(f"{API}/{a}/heartbeat", headers=user())  # b is now the least recent
        await _later()
        before = await _evicted(client)
        response = await client.post(API, json={"title": "new"}, headers=user())
        assert response.status_code == 201, response.text
        new = response.json()["session_id"]
        assert await _live(client) == {a, c, new}
        assert (await client.get(f"{API}/{b}", headers=user())).status_code == 404
        assert await _evicted(client) == before + 1
        # Below the limit again: the next create at the limit evicts the next oldest, c.
        response = await client.post(API, json={}, headers=user())
        assert await _live(client) == {a, new, response.json()["session_id"]}


async def test_archived_sessions_are_never_evicted(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=3, **EVICTING) as client:
        old, oldest_unarchived, c = await _sessions(client, 3)
        await client.post(f"{API}/{old}/archive", headers=user())
        response = await client.post(API, json={}, headers=user())
        assert response.status_code == 201
        assert await _live(client) == {old, c, response.json()["session_id"]}
        gone = await client.head(f"{API}/{oldest_unarchived}", headers=user())
        assert gone.status_code == 404


async def test_only_archived_sessions_at_the_limit_is_409_and_evicts_nothing(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=2, **EVICTING) as client:
        sids = await _sessions(client, 2)
        for sid in sids:
            await client.post(f"{API}/{sid}/archive", headers=user())
        before = await _evicted(client)
        response = await client.post(API, json={}, headers=user())
        assert response.status_code == 409
        assert response.json()["code"] == "session_limit_reached"
        assert await _live(client) == set(sids)
        assert await _evicted(client) == before


async def test_an_eviction_keeps_statistics_and_client_ids_right(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=2, **EVICTING) as client:
        first = (await create_session(client, client_id="ext-old"))["session_id"]
        for _ in range(3):
            await client.post(f"{API}/{first}/messages", json={"role": "user", "content": "x"},
                              headers=user())  # fmt: skip
        await _later()
        second = (await create_session(client))["session_id"]
        await client.post(f"{API}/{second}/messages", json={"role": "user", "content": "y"},
                          headers=user())  # fmt: skip
        await _later()
        await create_session(client)
        stats = (await client.get(f"{API}/statistics", headers=user())).json()
        assert (stats["total_sessions"], stats["total_messages"]) == (2, 1)
        # The evicted session's client_id is free: a create with it makes a new session.
        again = await client.post(API, json={"client_id": "ext-old"}, headers=user())
        assert again.status_code == 201
        assert again.json()["session_id"] != first


async def test_resuming_at_the_limit_evicts_nothing(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=2, **EVICTING) as client:
        resumable = (await create_session(client, client_id="ext-1"))["session_id"]
        other = (await create_session(client))["session_id"]
        before = await _evicted(client)
        response = await client.post(API, json={"client_id": "ext-1"}, headers=user())
        assert response.status_code == 200
        assert response.json()["session_id"] == resumable
        assert await _live(client) == {resumable, other}
        assert await _evicted(client) == before


async def test_a_retried_create_evicts_once(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=2, **EVICTING) as client:
        kept = (await _sessions(client, 2))[1]
        headers = {**user(), "Idempotency-Key": "evicting-create"}
        before = await _evicted(client)
        first = await client.post(API, json={}, headers=headers)
        retry = await client.post(API, json={}, headers=headers)
        assert first.status_code == retry.status_code == 201
        assert retry.json()["session_id"] == first.json()["session_id"]
        assert await _live(client) == {kept, first.json()["session_id"]}
        assert await _evicted(client) == before + 1


async def test_only_the_callers_sessions_are_evicted(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=1, **EVICTING) as client:
        theirs = (await create_session(client, "u2"))["session_id"]
        await create_session(client)
        await create_session(client)
        assert await _live(client, "u2") == {theirs}


async def test_twenty_concurrent_creates_at_the_limit(make_client: ClientFactory) -> None:
    """Two service instances race 20 creates at the limit: exactly the limit remains, one
    eviction per create beyond it, and no survivor is older than an evicted session."""
    limit, racers = 5, 20
    async with (
        make_client(max_sessions_per_user=limit, **EVICTING) as one,
        make_client(max_sessions_per_user=limit, **EVICTING) as two,
    ):
        old = await _sessions(one, limit)
        before = await _evicted(one)  # one registry per process: both instances count there
        responses = await asyncio.gather(
            *((one if i % 2 else two).post(API, json={"title": f"r{i}"}, headers=user())
              for i in range(racers))
        )  # fmt: skip
        assert [r.status_code for r in responses] == [201] * racers
        created = {
            r.json()["session_id"]: epoch_ms(r.json()["last_activity_at"]) for r in responses
        }
        survivors = await _live(one)
        assert len(survivors) == limit
        assert survivors <= set(created)  # every older session went first
        assert await _evicted(one) == before + racers
        evicted = set(created) - survivors
        assert max(created[s] for s in evicted) <= min(created[s] for s in survivors)
        stats = (await one.get(f"{API}/statistics", headers=user())).json()
        assert stats["total_sessions"] == limit
        assert not {
            s for s in old if (await one.head(f"{API}/{s}", headers=user())).status_code == 200
        }


async def test_a_lowered_limit_is_reached_in_bounded_steps(make_client: ClientFactory) -> None:
    """More sessions than one script evicts (the limit was lowered): still exactly the limit."""
    async with make_client() as client:
        for _ in range(3):
            await asyncio.gather(*(create_session(client) for _ in range(50)))
        newest = (await create_session(client))["session_id"]
    async with make_client(max_sessions_per_user=10, **EVICTING) as client:
        before = await _evicted(client)
        response = await client.post(API, json={}, headers=user())
        assert response.status_code == 201
        survivors = await _live(client)
        assert len(survivors) == 10
        assert {newest, response.json()["session_id"]} <= survivors
        assert await _evicted(client) == before + 142


async def test_an_eviction_is_logged_without_content_or_the_user_id(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = "alice@example.com"
    async with make_client(
        max_sessions_per_user=1, log_format="json", log_level="INFO", **EVICTING
    ) as client:
        victim = (await create_session(client, owner, title="secret plans"))["session_id"]
        capsys.readouterr()
        await create_session(client, owner)
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    [line] = [e for e in lines if "evicted" in e["msg"]]
    assert line["session_id"] == victim
    assert line["user"] == user_ref(owner)
    assert owner not in err
    assert "secret plans" not in err


async def test_many_expired_sessions_still_indexed_do_not_confuse_the_policy(
    make_client: ClientFactory,
    redis: Redis,
) -> None:
    """More expired sessions than one script prunes: the create still evicts exactly one
    live session, and statistics count only the live ones."""
    async with make_client(default_session_ttl=1) as client:
        for _ in range(3):
            await asyncio.gather(*(create_session(client) for _ in range(50)))
        doomed = await create_session(client)
    async with make_client(max_sessions_per_user=3, **EVICTING) as client:
        live = await _sessions(client, 3, timeout_minutes=10)
        await wait_past(redis, doomed["expires_at"])
        before = await _evicted(client)
        response = await client.post(API, json={}, headers=user())
        assert response.status_code == 201
        assert await _live(client) == {*live[1:], response.json()["session_id"]}
        assert await _evicted(client) == before + 1
        stats = (await client.get(f"{API}/statistics", headers=user())).json()
        assert stats["total_sessions"] == 3
