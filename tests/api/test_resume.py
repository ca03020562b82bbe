"""Resume by client_id (issue 4, item 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, wait_past


async def _create(client: httpx.AsyncClient, user_id: str = "u1", **body: Any) -> httpx.Response:
    return await client.post(API, json=body, headers=user(user_id))


async def test_create_with_a_live_client_id_resumes_with_200_and_session_resumed(
    client: httpx.AsyncClient,
) -> None:
    first = await create_session(client, client_id="ext-1", title="first")
    response = await _create(client, client_id="ext-1", title="ignored")
    assert response.status_code == 200
    body = response.json()
    assert body["session_resumed"] is True
    assert body["session_id"] == first["session_id"]
    assert body["title"] == "first"
    listed = (await client.get(API, headers=user())).json()
    assert listed["total"] == 1


async def test_resume_extends_the_sessions_life(client: httpx.AsyncClient) -> None:
    first = await create_session(client, client_id="ext-1", timeout_minutes=5)
    await asyncio.sleep(0.01)
    resumed = (await _create(client, client_id="ext-1")).json()
    assert resumed["expires_at"] > first["expires_at"]
    assert resumed["last_activity_at"] > first["last_activity_at"]
    got = (await client.get(f"{API}/{first['session_id']}", headers=user())).json()
    assert got["expires_at"] == resumed["expires_at"]


async def test_an_in_progress_session_is_resumed(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, client_id="ext-1"))["session_id"]
    await client.patch(f"{API}/{sid}", json={"status": "in_progress"}, headers=user())
    response = await _create(client, client_id="ext-1")
    assert response.status_code == 200
    assert response.json()["session_id"] == sid
    assert response.json()["status"] == "in_progress"


@pytest.mark.parametrize("status", ["completed", "abandoned", "archived"])
async def test_a_finished_session_is_not_resumed(client: httpx.AsyncClient, status: str) -> None:
    sid = (await create_session(client, client_id="ext-1"))["session_id"]
    response = await client.patch(f"{API}/{sid}", json={"status": status}, headers=user())
    assert response.status_code == 200
    again = await _create(client, client_id="ext-1")
    assert again.status_code == 201
    assert again.json()["session_resumed"] is False
    assert again.json()["session_id"] != sid
    assert again.json()["client_id"] == "ext-1"
    old = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert old["status"] == status


async def test_after_a_new_session_replaces_a_finished_one_the_new_one_is_resumed(
    client: httpx.AsyncClient,
) -> None:
    old = (await create_session(client, client_id="ext-1"))["session_id"]
    await client.patch(f"{API}/{old}", json={"status": "completed"}, headers=user())
    new = (await create_session(client, client_id="ext-1"))["session_id"]
    response = await _create(client, client_id="ext-1")
    assert response.status_code == 200
    assert response.json()["session_id"] == new


async def test_a_deleted_session_is_not_resumed(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, client_id="ext-1"))["session_id"]
    await client.delete(f"{API}/{sid}", headers=user())
    response = await _create(client, client_id="ext-1")
    assert response.status_code == 201
    assert response.json()["session_id"] != sid


async def test_an_expired_session_is_not_resumed(make_client: ClientFactory, redis: Redis) -> None:
    async with make_client(default_session_ttl=1) as client:
        created = await create_session(client, client_id="ext-1")
        sid = created["session_id"]
        await wait_past(redis, created["expires_at"])
        response = await _create(client, client_id="ext-1")
        assert response.status_code == 201
        assert response.json()["session_resumed"] is False
        assert response.json()["session_id"] != sid


async def test_another_users_client_id_never_resumes_my_session(
    client: httpx.AsyncClient,
) -> None:
    mine = (await create_session(client, "alice", client_id="shared"))["session_id"]
    response = await _create(client, "bob", client_id="shared")
    assert response.status_code == 201
    assert response.json()["session_id"] != mine
    assert response.json()["user_id"] == "bob"
    again = await _create(client, "alice", client_id="shared")
    assert again.status_code == 200
    assert again.json()["session_id"] == mine


async def test_different_client_ids_get_different_sessions(client: httpx.AsyncClient) -> None:
    a = await create_session(client, client_id="ext-a")
    b = await create_session(client, client_id="ext-b")
    assert a["session_id"] != b["session_id"]


async def test_create_without_client_id_never_resumes(client: httpx.AsyncClient) -> None:
    a = await create_session(client)
    b = await create_session(client)
    assert a["session_id"] != b["session_id"]


async def test_concurrent_creates_with_one_client_id_yield_exactly_one_session(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(*(_create(client, client_id="ext-race") for _ in range(25)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 24 + [201]
    assert len({r.json()["session_id"] for r in responses}) == 1
    assert sum(r.json()["session_resumed"] for r in responses) == 24
    listed = (await client.get(API, headers=user())).json()
    assert listed["total"] == 1


async def test_concurrent_creates_across_app_instances_yield_one_session(
    make_client: ClientFactory,
) -> None:
    async with make_client() as one, make_client() as two:
        responses = await asyncio.gather(
            *(_create(c, client_id="ext-multi") for c in (one, two) * 10)
        )
    assert len({r.json()["session_id"] for r in responses}) == 1
    assert [r.status_code for r in responses].count(201) == 1


async def test_resume_works_at_the_session_limit(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=1) as client:
        sid = (await create_session(client, client_id="ext-1"))["session_id"]
        response = await _create(client, client_id="ext-1")
        assert response.status_code == 200
        assert response.json()["session_id"] == sid


async def test_a_restored_session_whose_client_id_was_freed_is_resumed(
    client: httpx.AsyncClient,
) -> None:
    old = (await create_session(client, client_id="ext-1"))["session_id"]
    await client.post(f"{API}/{old}/archive", headers=user())
    newer = (await create_session(client, client_id="ext-1"))["session_id"]
    await client.delete(f"{API}/{newer}", headers=user())
    await client.post(f"{API}/{old}/restore", headers=user())
    response = await _create(client, client_id="ext-1")
    assert response.status_code == 200
    assert response.json()["session_id"] == old
    assert (await client.get(API, headers=user())).json()["total"] == 1
