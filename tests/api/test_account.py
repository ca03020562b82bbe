"""HEAD of a session, the caller's statistics and delete-all (issue 12, item 4)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.account import DELETE_SLICE
from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, get_json, user_keys, wait_past

KEYS = Keys("fms")
UNKNOWN_ID = "sess_" + "0" * 32
ADMIN = {"X-User-Roles": '["admin"]'}


async def _append(client: httpx.AsyncClient, sid: str, n: int, user_id: str = "u1") -> None:
    for i in range(n):
        response = await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": f"m{i}"},
            headers=user(user_id),
        )  # fmt: skip
        assert response.status_code == 201, response.text


async def _stats(client: httpx.AsyncClient, user_id: str = "u1") -> dict[str, Any]:
    stats: dict[str, Any] = await get_json(client, f"{API}/statistics", user_id)
    return stats


# ---- HEAD ---------------------------------------------------------------------------------


async def test_head_is_200_without_a_body_for_a_live_session(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await client.head(f"{API}/{sid}", headers=user())
    assert response.status_code == 200
    assert response.content == b""
    await client.post(f"{API}/{sid}/archive", headers=user())
    assert (await client.head(f"{API}/{sid}", headers=user())).status_code == 200


async def test_head_is_404_for_unknown_foreign_malformed_and_deleted_sessions(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    for path, who in (
        (f"{API}/{UNKNOWN_ID}", "u1"),
        (f"{API}/{sid}", "someone-else"),
        (f"{API}/not-an-id", "u1"),
    ):
        response = await client.head(path, headers=user(who))
        assert response.status_code == 404, path
        assert response.content == b""
    await client.delete(f"{API}/{sid}", headers=user())
    assert (await client.head(f"{API}/{sid}", headers=user())).status_code == 404


async def test_head_needs_an_identity(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    assert (await client.head(f"{API}/{sid}")).status_code == 401


async def test_head_is_404_once_the_session_expires(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=1) as client:
        created = await create_session(client)
        await wait_past(redis, created["expires_at"])
        assert (
            await client.head(f"{API}/{created['session_id']}", headers=user())
        ).status_code == 404


async def test_head_does_not_count_as_activity(client: httpx.AsyncClient, redis: Redis) -> None:
    created = await create_session(client)
    sid = created["session_id"]
    before = await redis.hgetall(KEYS.session("u1", sid))
    deadline = await redis.pexpiretime(KEYS.session("u1", sid))
    await asyncio.sleep(0.01)
    for _ in range(3):
        assert (await client.head(f"{API}/{sid}", headers=user())).status_code == 200
    assert await redis.hgetall(KEYS.session("u1", sid)) == before
    assert await redis.pexpiretime(KEYS.session("u1", sid)) == deadline
    assert (await client.get(f"{API}/{sid}", headers=user())).json()["last_activity_at"] == (
        created["last_activity_at"]
    )


# ---- statistics -----------------------------------------------------------------------------


async def test_statistics_of_a_user_without_sessions(client: httpx.AsyncClient) -> None:
    assert await _stats(client, "nobody") == {
        "user_id": "nobody",
        "total_sessions": 0,
        "by_status": dict.fromkeys(
            ("active", "in_progress", "completed", "abandoned", "archived"), 0
        ),
        "total_messages": 0,
        "oldest_activity_at": None,
        "newest_activity_at": None,
    }


async def test_statistics_counts_by_status_messages_and_activity_range(
    client: httpx.AsyncClient,
) -> None:
    first = await create_session(client)
    s = [first["session_id"]] + [(await create_session(client))["session_id"] for _ in range(4)]
    await _append(client, s[1], 3)  # in_progress
    await _append(client, s[2], 2)
    await client.patch(f"{API}/{s[2]}", json={"status": "completed"}, headers=user())
    await client.post(f"{API}/{s[3]}/archive", headers=user())
    last = (await client.post(f"{API}/{s[4]}/heartbeat", headers=user())).json()
    await create_session(client, "u2")
    await _append(client, (await create_session(client, "u2"))["session_id"], 5, "u2")

    stats = await _stats(client)
    assert stats["total_sessions"] == 5
    assert stats["by_status"] == {
        "active": 2, "in_progress": 1, "completed": 1, "abandoned": 0, "archived": 1,
    }  # fmt: skip
    assert stats["total_messages"] == 5
    assert stats["oldest_activity_at"] == first["last_activity_at"]
    assert stats["newest_activity_at"] == last["last_activity_at"]
    assert (await _stats(client, "u2"))["total_messages"] == 5


async def test_statistics_is_not_shadowed_by_the_session_id_route(
    client: httpx.AsyncClient,
) -> None:
    await create_session(client)
    for path in (f"{API}/statistics", f"{API}/statistics?via=fastapi"):
        response = await client.get(path, headers=user())
        assert response.status_code == 200, path
        assert response.json()["total_sessions"] == 1


async def test_statistics_message_total_follows_deletes(client: httpx.AsyncClient) -> None:
    a, b = [(await create_session(client))["session_id"] for _ in range(2)]
    await _append(client, a, 4)
    await _append(client, b, 2)
    assert (await _stats(client))["total_messages"] == 6
    assert (await client.delete(f"{API}/{a}", headers=user())).status_code == 204
    stats = await _stats(client)
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 2)


@pytest.mark.parametrize("crowd", [0, 150], ids=["alone", "more_than_one_prune_takes"])
async def test_statistics_forget_expired_sessions_and_their_messages(
    make_client: ClientFactory, redis: Redis, crowd: int
) -> None:
    """Exact even when more sessions expired (`crowd`, empty) than one prune takes."""
    async with make_client(default_session_ttl=1) as client:
        keeper = (await create_session(client, timeout_minutes=10))["session_id"]
        await _append(client, keeper, 1)
        for _ in range(crowd // 50):
            await asyncio.gather(*(create_session(client) for _ in range(50)))
        doomed = (await create_session(client))["session_id"]
        await _append(client, doomed, 3)
        assert (await _stats(client))["total_messages"] == 4
        # The appends slid its deadline: wait for the one it has now.
        expires = (await client.get(f"{API}/{doomed}", headers=user())).json()["expires_at"]
        await wait_past(redis, expires)
        stats = await _stats(client)
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 1)
    assert stats["by_status"]["in_progress"] == 1


async def test_statistics_come_from_the_counter_not_a_scan(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    await _append(client, sid, 2)
    await redis.hincrby(KEYS.user_counters("u1"), "messages", 1000)
    assert (await _stats(client))["total_messages"] == 1002


async def test_a_session_stored_before_the_counters_is_counted_from_its_next_append(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """Sessions written before the counters existed have no entry; an append heals it."""
    sid = (await create_session(client))["session_id"]
    await _append(client, sid, 3)
    counters = user_keys("u1")
    await redis.delete(counters.message_counts, counters.user_counters)
    assert (await _stats(client))["total_messages"] == 0
    await _append(client, sid, 1)
    assert (await _stats(client))["total_messages"] == 4
    await client.delete(f"{API}/{sid}", headers=user())
    assert (await _stats(client))["total_messages"] == 0


async def test_erasure_leaves_no_counters(client: httpx.AsyncClient, redis: Redis) -> None:
    sid = (await create_session(client, "victim"))["session_id"]
    await _append(client, sid, 2, "victim")
    response = await client.delete("/api/v1/users/victim/sessions", headers=user("root", **ADMIN))
    assert response.json()["deleted_sessions"] == 1
    assert [k async for k in redis.scan_iter(match=KEYS.user_pattern("victim"))] == []
    assert (await _stats(client, "victim"))["total_messages"] == 0


# ---- delete all ---------------------------------------------------------------------------


async def test_delete_all_deletes_every_session_archived_included(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sids = [(await create_session(client, client_id=f"ext-{i}"))["session_id"] for i in range(4)]
    await _append(client, sids[0], 2)
    await client.post(f"{API}/{sids[0]}/cases", json={"case_id": "c1"}, headers=user())
    await client.post(f"{API}/{sids[1]}/archive", headers=user())
    other = (await create_session(client, "u2"))["session_id"]

    response = await client.delete(API, headers=user())
    assert response.status_code == 200
    assert response.json() == {"deleted": 4}
    for sid in sids:
        assert (await client.get(f"{API}/{sid}", headers=user())).status_code == 404
    listed = (await client.get(f"{API}?include_archived=true", headers=user())).json()
    assert listed["total"] == 0
    stats = await _stats(client)
    assert (stats["total_sessions"], stats["total_messages"]) == (0, 0)
    # Nothing of a session is left behind; the other user is untouched.
    leftovers = {k.split(":")[2] async for k in redis.scan_iter(match=KEYS.user_pattern("u1"))}
    assert leftovers <= {"u"}  # the user's counters, at zero
    assert (await client.get(f"{API}/{other}", headers=user("u2"))).status_code == 200
    # A client_id is free again, and a second delete finds nothing.
    assert (await client.post(API, json={"client_id": "ext-0"}, headers=user())).status_code == 201
    assert (await client.delete(API, headers=user("nobody"))).json() == {"deleted": 0}


async def test_delete_all_works_in_slices(client: httpx.AsyncClient) -> None:
    count = DELETE_SLICE * 2 + 17
    for start in range(0, count, 50):
        await asyncio.gather(*(create_session(client) for _ in range(min(50, count - start))))
    assert (await _stats(client))["total_sessions"] == count
    assert (await client.delete(API, headers=user())).json() == {"deleted": count}
    assert (await _stats(client))["total_sessions"] == 0


async def test_delete_all_does_not_count_sessions_that_had_already_expired(
    make_client: ClientFactory,
    redis: Redis,
) -> None:
    async with make_client(default_session_ttl=1) as client:
        await create_session(client, timeout_minutes=10)
        doomed = await create_session(client)
        await wait_past(redis, doomed["expires_at"])
        assert (await client.delete(API, headers=user())).json() == {"deleted": 1}


async def test_delete_all_needs_an_identity(client: httpx.AsyncClient) -> None:
    await create_session(client)
    response = await client.delete(API)
    assert response.status_code == 401
    assert (await _stats(client))["total_sessions"] == 1


async def test_the_new_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "get" in paths[f"{API}/statistics"]
    assert "delete" in paths[API]
    assert "head" in paths[f"{API}/{{session_id}}"]


async def test_statistics_message_total_follows_fork_and_rewind(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await _append(client, sid, 5)
    fork = await client.post(
        f"{API}/{sid}/fork", json={"through_message_id": "msg_0000000003"}, headers=user()
    )
    assert fork.status_code == 201, fork.text
    assert (await _stats(client))["total_messages"] == 8
    rewound = await client.post(
        f"{API}/{sid}/rewind", json={"to_message_id": "msg_0000000002"}, headers=user()
    )
    assert rewound.status_code == 200, rewound.text
    assert (await _stats(client))["total_messages"] == 5
    await client.delete(f"{API}/{fork.json()['session_id']}", headers=user())
    stats = await _stats(client)
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 2)
