"""Many writers on one conversation (issue 3): no append is lost or duplicated,
counters agree, ids follow server order and timestamps never go backwards."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user

WRITERS = 64
APPENDS_EACH = 20
ROLES = ("user", "assistant", "system")
KEYS = Keys("fms")


async def writer(client: httpx.AsyncClient, sid: str, w: int, count: int) -> list[httpx.Response]:
    """One client appending `count` messages one after another."""
    responses = []
    for i in range(count):
        responses.append(
            await client.post(
                f"/api/v1/sessions/{sid}/messages",
                json={"role": ROLES[w % 3], "content": f"w{w}-{i}", "metadata": {"w": w, "i": i}},
                headers=user(),
            )
        )
    return responses


async def all_messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    while True:
        response = await client.get(
            f"/api/v1/sessions/{sid}/messages", params=params, headers=user()
        )
        data = response.json()
        messages += data["messages"]
        if not data["has_more"]:
            return messages
        params["after"] = data["next_cursor"]


async def test_concurrent_writers_lose_and_duplicate_nothing(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    batches = await asyncio.gather(*(writer(client, sid, w, APPENDS_EACH) for w in range(WRITERS)))

    responses = [r for batch in batches for r in batch]
    assert {r.status_code for r in responses} == {201}, "contention must never fail an append"
    total = WRITERS * APPENDS_EACH
    acked = {r.json()["message"]["message_id"]: r.json()["message"] for r in responses}
    assert len(acked) == total, "two appends were given the same id"
    assert sorted(r.json()["total_messages"] for r in responses) == list(range(1, total + 1))

    stored = await all_messages(client, sid)
    assert len(stored) == total
    assert {m["message_id"]: m for m in stored} == acked
    assert [m["message_id"] for m in stored] == [f"msg_{n:010d}" for n in range(1, total + 1)]
    assert sorted(m["content"] for m in stored) == sorted(
        f"w{w}-{i}" for w in range(WRITERS) for i in range(APPENDS_EACH)
    )


async def test_concurrent_writers_agree_with_totals_and_stats(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    await asyncio.gather(*(writer(client, sid, w, APPENDS_EACH) for w in range(WRITERS)))

    total = WRITERS * APPENDS_EACH
    page = (await client.get(f"/api/v1/sessions/{sid}/messages", headers=user())).json()
    stats = (await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
    session = (await client.get(f"/api/v1/sessions/{sid}", headers=user())).json()
    assert page["total"] == stats["message_count"] == session["message_count"] == total
    per_role = {
        role: APPENDS_EACH * sum(1 for w in range(WRITERS) if ROLES[w % 3] == role)
        for role in ROLES
    }
    assert stats["user_message_count"] == per_role["user"]
    assert stats["assistant_message_count"] == per_role["assistant"]
    assert stats["system_message_count"] == per_role["system"]
    assert session["status"] == "in_progress"


async def test_server_order_keeps_each_writers_order_and_time_never_goes_back(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]

    await asyncio.gather(*(writer(client, sid, w, APPENDS_EACH) for w in range(WRITERS)))

    stored = await all_messages(client, sid)
    timestamps = [m["timestamp"] for m in stored]
    assert timestamps == sorted(timestamps), "a later message has an earlier timestamp"
    for w in range(WRITERS):
        own = [m["metadata"]["i"] for m in stored if m["metadata"]["w"] == w]
        assert own == list(range(APPENDS_EACH)), f"writer {w} was reordered"
    stats = (await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
    assert stats["first_message_at"] == timestamps[0]
    assert stats["last_message_at"] == timestamps[-1]


async def test_concurrent_writers_never_overshoot_the_message_limit(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_messages_per_session=50) as client:
        sid = (await create_session(client))["session_id"]

        batches = await asyncio.gather(*(writer(client, sid, w, 2) for w in range(WRITERS)))

        codes = [r.status_code for batch in batches for r in batch]
        assert codes.count(201) == 50
        assert codes.count(409) == WRITERS * 2 - 50
        assert await redis.xlen(KEYS.messages("u1", sid)) == 50


async def test_more_writers_than_storage_connections_all_succeed(
    make_client: ClientFactory,
) -> None:
    async with make_client(redis_max_connections=4) as client:
        sid = (await create_session(client))["session_id"]

        batches = await asyncio.gather(*(writer(client, sid, w, 3) for w in range(WRITERS)))

        codes = {r.status_code for batch in batches for r in batch}
        assert codes == {201}, "a busy connection pool must queue appends, not fail them"
        stats = (await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
        assert stats["message_count"] == WRITERS * 3
