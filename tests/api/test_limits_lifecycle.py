"""MAX_SESSIONS_PER_USER (issue 4, item 5): refuse, never evict."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, wait_past


async def test_the_create_after_the_limit_is_409_session_limit_reached(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_sessions_per_user=3) as client:
        for _ in range(3):
            await create_session(client)
        response = await client.post(API, json={"title": "one too many"}, headers=user())
        assert response.status_code == 409
        assert response.json()["code"] == "session_limit_reached"


async def test_reaching_the_limit_evicts_nothing(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=3) as client:
        ids = [(await create_session(client, title=str(i)))["session_id"] for i in range(3)]
        for _ in range(3):
            refused = await client.post(API, json={}, headers=user())
            assert refused.status_code == 409
        listed = (await client.get(API, headers=user())).json()
        assert listed["total"] == 3
        assert {s["session_id"] for s in listed["sessions"]} == set(ids)
        for sid in ids:
            assert (await client.get(f"{API}/{sid}", headers=user())).status_code == 200


async def test_the_limit_is_per_user(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=1) as client:
        await create_session(client, "alice")
        assert (await client.post(API, json={}, headers=user("alice"))).status_code == 409
        await create_session(client, "bob")


async def test_deleting_a_session_makes_room(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=2) as client:
        first = await create_session(client)
        await create_session(client)
        assert (await client.post(API, json={}, headers=user())).status_code == 409
        await client.delete(f"{API}/{first['session_id']}", headers=user())
        await create_session(client)


async def test_an_expired_session_no_longer_counts(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=1, default_session_ttl=2) as client:
        first = await create_session(client)
        assert (await client.post(API, json={}, headers=user())).status_code == 409
        await wait_past(redis, first["expires_at"])
        await create_session(client)


async def test_concurrent_creates_never_exceed_the_limit(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=5) as client:
        responses = await asyncio.gather(
            *(client.post(API, json={}, headers=user()) for _ in range(12))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 5 + [409] * 7
        assert (await client.get(API, headers=user())).json()["total"] == 5


async def test_archived_sessions_count_toward_the_limit(make_client: ClientFactory) -> None:
    async with make_client(max_sessions_per_user=1) as client:
        sid = (await create_session(client))["session_id"]
        await client.post(f"{API}/{sid}/archive", headers=user())
        refused = await client.post(API, json={}, headers=user())
        assert refused.status_code == 409
        assert refused.json()["code"] == "session_limit_reached"
        assert (await client.get(f"{API}/{sid}", headers=user())).status_code == 200
