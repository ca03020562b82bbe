"""Session statistics from counters kept at append time (issue 3, item 7)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx

from tests.conftest import ClientFactory, create_session, user

FIELDS = {
    "session_id",
    "status",
    "message_count",
    "user_message_count",
    "assistant_message_count",
    "system_message_count",
    "tool_message_count",
    "total_tokens",
    "total_tokens_by_role",
    "first_message_at",
    "last_message_at",
    "duration_seconds",
    "created_at",
    "last_activity_at",
    "expires_at",
}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def stats(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert set(data) == FIELDS
    return data


async def append(client: httpx.AsyncClient, sid: str, role: str, **extra: Any) -> httpx.Response:
    return await client.post(
        f"/api/v1/sessions/{sid}/messages",
        json={"role": role, "content": "text", **extra},
        headers=user(),
    )


async def test_a_new_session_has_zero_counts_and_no_message_times(
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client)

    data = await stats(client, session["session_id"])

    assert data["session_id"] == session["session_id"]
    assert data["status"] == "active"
    assert (
        data["message_count"],
        data["user_message_count"],
        data["assistant_message_count"],
        data["system_message_count"],
    ) == (0, 0, 0, 0)
    assert data["first_message_at"] is None
    assert data["last_message_at"] is None
    assert data["duration_seconds"] == 0
    assert data["created_at"] == session["created_at"]
    assert data["last_activity_at"] == session["last_activity_at"]
    assert data["expires_at"] == session["expires_at"]


async def test_counts_by_role_and_message_times_follow_the_appends(
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client)
    sid = session["session_id"]
    roles = ["user", "assistant", "user", "system", "assistant", "user"]
    appended = []
    for role in roles:
        await asyncio.sleep(0.002)  # distinct server timestamps
        appended.append((await append(client, sid, role)).json()["message"])

    data = await stats(client, sid)
    current = (await client.get(f"/api/v1/sessions/{sid}", headers=user())).json()

    assert data["status"] == "in_progress"
    assert data["message_count"] == 6
    assert data["user_message_count"] == 3
    assert data["assistant_message_count"] == 2
    assert data["system_message_count"] == 1
    assert data["first_message_at"] == appended[0]["timestamp"]
    assert data["last_message_at"] == appended[-1]["timestamp"]
    expected = (parse(appended[-1]["timestamp"]) - parse(session["created_at"])).total_seconds()
    assert data["duration_seconds"] == expected
    assert data["last_activity_at"] == current["last_activity_at"]
    assert data["expires_at"] == current["expires_at"]


async def test_rejected_and_replayed_appends_do_not_count(make_client: ClientFactory) -> None:
    async with make_client(max_message_bytes=10, max_messages_per_session=2) as client:
        sid = (await create_session(client))["session_id"]
        keyed = user(**{"Idempotency-Key": "k"})
        url = f"/api/v1/sessions/{sid}/messages"
        first = await client.post(url, json={"role": "user", "content": "a"}, headers=keyed)
        assert first.status_code == 201
        replay = await client.post(url, json={"role": "user", "content": "a"}, headers=keyed)
        assert replay.status_code == 201
        assert (await append(client, sid, "user", content="x" * 11)).status_code == 413
        assert (await append(client, sid, "robot")).status_code == 422
        assert (await append(client, sid, "assistant")).status_code == 201
        assert (await append(client, sid, "system")).status_code == 409

        data = await stats(client, sid)

        assert data["message_count"] == 2
        assert (
            data["user_message_count"],
            data["assistant_message_count"],
            data["system_message_count"],
        ) == (1, 1, 0)


async def test_a_heartbeat_moves_last_activity_but_not_last_message(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid, "user")
    before = await stats(client, sid)
    await asyncio.sleep(0.01)

    beat = await client.post(f"/api/v1/sessions/{sid}/heartbeat", headers=user())

    assert beat.status_code == 200
    after = await stats(client, sid)
    assert after["last_activity_at"] == beat.json()["last_activity_at"]
    assert parse(after["last_activity_at"]) > parse(before["last_activity_at"])
    assert after["last_message_at"] == before["last_message_at"]
    assert after["duration_seconds"] == before["duration_seconds"]


async def test_stats_of_an_archived_session_keep_their_counts(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid, "user")
    await append(client, sid, "assistant")

    archived = await client.post(f"/api/v1/sessions/{sid}/archive", headers=user())

    assert archived.status_code == 200
    data = await stats(client, sid)
    assert data["status"] == "archived"
    assert (data["message_count"], data["user_message_count"]) == (2, 1)
    assert data["expires_at"] == archived.json()["expires_at"]
