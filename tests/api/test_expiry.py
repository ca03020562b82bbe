"""Inactivity expiry and archived retention (issue 4, item 3).

Sessions here live one or two seconds (`DEFAULT_SESSION_TTL`, the shortest the settings
allow, or two where a test must do several things first), and the tests wait until Redis's
own clock, the one the service decides expiry on, has passed the session's `expires_at`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import (
    API,
    epoch,
    epoch_ms,
    get_json,
    keys_of,
    redis_now_ms,
    user_keys,
    wait_past,
)

KEYS = Keys("fms")


@pytest.fixture
async def archived_kept(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Sessions idle out after two seconds; archived ones are kept until deleted."""
    async with make_client(default_session_ttl=2, archived_session_ttl=0) as client:
        yield client


async def _get(client: httpx.AsyncClient, sid: str) -> httpx.Response:
    return await client.get(f"{API}/{sid}", headers=user())


async def _search_total(client: httpx.AsyncClient, **body: Any) -> int:
    response = await client.post(f"{API}/search", json=body, headers=user())
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


async def _list_total(client: httpx.AsyncClient, **params: Any) -> int:
    total: int = (await get_json(client, API, params=params))["total"]
    return total


# ---- timeouts ---------------------------------------------------------------------------


async def test_timeout_minutes_sets_the_deadline(client: httpx.AsyncClient) -> None:
    created = await create_session(client, timeout_minutes=1)
    assert created["timeout_minutes"] == 1
    window = epoch(created["expires_at"]) - epoch(created["last_activity_at"])
    assert window == 60


async def test_default_session_ttl_applies_without_timeout_minutes(
    make_client: ClientFactory,
) -> None:
    async with make_client(default_session_ttl=90) as client:
        created = await create_session(client)
    window = epoch(created["expires_at"]) - epoch(created["last_activity_at"])
    assert window == 90
    assert created["timeout_minutes"] == 1.5


@pytest.mark.parametrize("minutes", [0, -5, 10081, 10**9])
async def test_timeout_minutes_outside_the_default_bounds_is_422(
    client: httpx.AsyncClient, minutes: int
) -> None:
    response = await client.post(API, json={"timeout_minutes": minutes}, headers=user())
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert "timeout_minutes" in body["detail"]


async def test_timeout_minutes_bounds_come_from_the_settings(make_client: ClientFactory) -> None:
    async with make_client(session_min_timeout_minutes=5, session_max_timeout_minutes=10) as c:
        for minutes, status in ((4, 422), (5, 201), (10, 201), (11, 422)):
            response = await c.post(API, json={"timeout_minutes": minutes}, headers=user())
            assert response.status_code == status, minutes


async def test_the_minute_bounds_do_not_apply_to_default_session_ttl(
    make_client: ClientFactory,
) -> None:
    async with make_client(default_session_ttl=1, session_min_timeout_minutes=5) as client:
        created = await create_session(client)
    assert created["timeout_minutes"] == pytest.approx(1 / 60)


# ---- the instant a session expires ------------------------------------------------------


async def test_every_read_agrees_the_instant_a_session_expires(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=2) as client:
        keeper = await create_session(client, title="keeper", timeout_minutes=10)
        doomed = await create_session(client, title="doomed", client_id="ext-1",
                                      metadata={"k": "v"})  # fmt: skip
        sid = doomed["session_id"]
        await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "x"},
                          headers=user())  # fmt: skip
        await client.post(f"{API}/{sid}/cases", json={"case_id": "c1"}, headers=user())
        expires = (await _get(client, sid)).json()["expires_at"]
        assert await _search_total(client) == 2
        await wait_past(redis, expires)

        # Search first: no other read has pruned the indexes yet.
        assert await _search_total(client) == 1
        assert await _search_total(client, query="doomed") == 0
        assert await _search_total(client, metadata={"k": "v"}) == 0
        assert (await _get(client, sid)).status_code == 404
        listed = (await client.get(API, headers=user())).json()
        assert listed["total"] == 1
        assert [s["session_id"] for s in listed["sessions"]] == [keeper["session_id"]]
        assert await _list_total(client, status="active") == 1
        for path in ("/messages", "/stats", "/export", "/recovery-info", "/cases"):
            response = await client.get(f"{API}/{sid}{path}", headers=user())
            assert response.status_code == 404, path
        beat = await client.post(f"{API}/{sid}/heartbeat", headers=user())
        assert beat.status_code == 404
        patch = await client.patch(f"{API}/{sid}", json={"title": "x"}, headers=user())
        assert patch.status_code == 404
        resumed = await client.post(API, json={"client_id": "ext-1"}, headers=user())
        assert resumed.status_code == 201


@pytest.fixture
async def just_expired(
    make_client: ClientFactory, redis: Redis
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client and its one session, expired an instant ago and not read since."""
    async with make_client(default_session_ttl=1) as client:
        created = await create_session(client)
        await wait_past(redis, created["expires_at"])
        yield client, created["session_id"]


async def test_list_total_drops_the_instant_a_session_expires_before_any_other_read(
    just_expired: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = just_expired
    assert await _list_total(client) == 0


async def test_get_is_404_the_instant_a_session_expires_before_any_other_read(
    just_expired: tuple[httpx.AsyncClient, str],
) -> None:
    client, sid = just_expired
    assert (await _get(client, sid)).status_code == 404


async def test_everything_a_session_owns_shares_its_deadline(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=60) as client:
        created = await create_session(client, client_id="ext-1")
        sid = created["session_id"]
        await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "x"},
                          headers={**user(), "Idempotency-Key": "k"})  # fmt: skip
        await client.post(f"{API}/{sid}/cases", json={"case_id": "c1"}, headers=user())
        expires_ms = round(epoch((await _get(client, sid)).json()["expires_at"]) * 1000)
    k = keys_of("u1", sid)
    owned = [k.session, k.messages, k.idempotency, k.cases, user_keys("u1").client("ext-1")]
    for key in owned:
        assert await redis.exists(key), key
        assert await redis.pexpiretime(key) == expires_ms, key


# ---- activity slides, reads do not -----------------------------------------------------------


async def test_reads_do_not_slide_the_deadline(make_client: ClientFactory, redis: Redis) -> None:
    async with make_client(default_session_ttl=2) as client:
        created = await create_session(client)
        sid = created["session_id"]
        await asyncio.sleep(0.3)
        await _get(client, sid)
        await client.get(API, headers=user())
        await client.post(f"{API}/search", json={}, headers=user())
        for path in ("/messages", "/stats", "/recovery-info", "/cases", "/export"):
            assert (await client.get(f"{API}/{sid}{path}", headers=user())).status_code == 200
        got = (await _get(client, sid)).json()
        assert got["expires_at"] == created["expires_at"]
        assert got["last_activity_at"] == created["last_activity_at"]
        await wait_past(redis, created["expires_at"])
        assert (await _get(client, sid)).status_code == 404


async def test_a_heartbeat_keeps_the_session_alive_past_its_first_deadline(
    make_client: ClientFactory,
    redis: Redis,
) -> None:
    async with make_client(default_session_ttl=2) as client:
        created = await create_session(client)
        sid = created["session_id"]
        # Halfway to the first deadline, however long the create took to answer.
        await wait_past(redis, (epoch_ms(created["expires_at"]) + await redis_now_ms(redis)) // 2)
        beat = (await client.post(f"{API}/{sid}/heartbeat", headers=user())).json()
        assert beat["expires_at"] > created["expires_at"]
        await wait_past(redis, created["expires_at"])
        response = await _get(client, sid)
        assert response.status_code == 200
        assert response.json()["expires_at"] == beat["expires_at"]
        assert await _list_total(client) == 1


@pytest.mark.parametrize("activity", ["heartbeat", "message", "update", "resume"])
async def test_activity_slides_expires_at(client: httpx.AsyncClient, activity: str) -> None:
    created = await create_session(client, client_id="ext-1", timeout_minutes=5)
    sid = created["session_id"]
    await asyncio.sleep(0.01)
    if activity == "heartbeat":
        response = await client.post(f"{API}/{sid}/heartbeat", headers=user())
    elif activity == "message":
        message = {"role": "user", "content": "x"}
        response = await client.post(f"{API}/{sid}/messages", json=message, headers=user())
    elif activity == "update":
        response = await client.patch(f"{API}/{sid}", json={"title": "t"}, headers=user())
    else:
        response = await client.post(API, json={"client_id": "ext-1"}, headers=user())
    assert response.status_code in (200, 201), response.text
    got = (await _get(client, sid)).json()
    assert got["expires_at"] > created["expires_at"]
    window = epoch(got["expires_at"]) - epoch(got["last_activity_at"])
    assert window == 300


# ---- archived retention --------------------------------------------------------------------


async def test_archived_sessions_do_not_expire_by_inactivity(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=2, archived_session_ttl=3600) as client:
        created = await create_session(client, title="kept")
        sid = created["session_id"]
        await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "x"},
                          headers=user())  # fmt: skip
        # The deadline the session would have had without archiving (the append slid it).
        active_deadline = (await _get(client, sid)).json()["expires_at"]
        archived = (await client.post(f"{API}/{sid}/archive", headers=user())).json()
        assert epoch(archived["expires_at"]) - time.time() > 3000
        await wait_past(redis, active_deadline)
        assert (await _get(client, sid)).status_code == 200
        messages = (await client.get(f"{API}/{sid}/messages", headers=user())).json()
        assert [m["content"] for m in messages["messages"]] == ["x"]
        assert await _list_total(client, status="archived") == 1


async def test_archived_sessions_are_kept_for_archived_session_ttl(
    make_client: ClientFactory,
    redis: Redis,
) -> None:
    async with make_client(default_session_ttl=3600, archived_session_ttl=1) as client:
        sid = (await create_session(client))["session_id"]
        archived = (await client.post(f"{API}/{sid}/archive", headers=user())).json()
        await wait_past(redis, archived["expires_at"])
        assert (await _get(client, sid)).status_code == 404
        assert await _list_total(client, include_archived="true") == 0
        assert await _search_total(client, status="archived") == 0


async def test_archived_session_ttl_zero_keeps_archived_sessions_until_deleted(
    archived_kept: httpx.AsyncClient, redis: Redis
) -> None:
    client = archived_kept
    sid = (await create_session(client))["session_id"]
    await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "x"},
                      headers=user())  # fmt: skip
    active_deadline = (await _get(client, sid)).json()["expires_at"]
    archived = (await client.post(f"{API}/{sid}/archive", headers=user())).json()
    assert archived["expires_at"] is None
    await wait_past(redis, active_deadline)
    got = await _get(client, sid)
    assert got.status_code == 200
    assert got.json()["expires_at"] is None
    assert got.json()["message_count"] == 1
    assert await redis.pttl(KEYS.session("u1", sid)) == -1
    assert await redis.pttl(KEYS.messages("u1", sid)) == -1
    assert await _list_total(client, status="archived") == 1


async def test_restore_gives_a_fresh_inactivity_window(
    archived_kept: httpx.AsyncClient, redis: Redis
) -> None:
    client = archived_kept
    created = await create_session(client)
    sid = created["session_id"]
    await client.post(f"{API}/{sid}/archive", headers=user())
    await wait_past(redis, created["expires_at"])
    restored = await client.post(f"{API}/{sid}/restore", headers=user())
    assert restored.status_code == 200
    body = restored.json()
    assert body["status"] == "active"
    assert epoch(body["expires_at"]) > time.time()
    assert (await _get(client, sid)).status_code == 200
    assert await _list_total(client) == 1
    await wait_past(redis, body["expires_at"])
    assert (await _get(client, sid)).status_code == 404
    assert await _list_total(client) == 0


@pytest.mark.parametrize("how", ["archive", "patch"])
async def test_archiving_either_way_applies_archived_session_ttl(
    make_client: ClientFactory, how: str
) -> None:
    for ttl, expected in ((0, None), (7776000, 7776000)):
        async with make_client(archived_session_ttl=ttl) as client:
            sid = (await create_session(client, timeout_minutes=5))["session_id"]
            if how == "archive":
                response = await client.post(f"{API}/{sid}/archive", headers=user())
            else:
                response = await client.patch(
                    f"{API}/{sid}", json={"status": "archived"}, headers=user()
                )
            body = response.json()
        assert body["status"] == "archived"
        if expected is None:
            assert body["expires_at"] is None
        else:
            assert epoch(body["expires_at"]) - time.time() == pytest.approx(expected, abs=60)
