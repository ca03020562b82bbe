"""Appending and reading conversation messages (issue 3): shape, validation,
limits, the session fields an append updates, isolation and key lifetimes."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import append, keys_of

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
KEYS = Keys("fms")


def messages_url(session_id: str) -> str:
    return f"/api/v1/sessions/{session_id}/messages"


async def get_session(client: httpx.AsyncClient, session_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/sessions/{session_id}", params=params, headers=user())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


# ---- append -----------------------------------------------------------------


async def test_append_answers_201_with_the_stored_message_and_the_total(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]

    response = await append(client, sid, "Why is the DB slow?", metadata={"source": "chat"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"session_id", "message", "total_messages"}
    assert body["session_id"] == sid
    assert body["total_messages"] == 1
    message = body["message"]
    assert set(message) == {
        "message_id",
        "role",
        "content",
        "timestamp",
        "metadata",
        "token_count",
        "token_count_estimated",
    }
    assert message["message_id"] == "msg_0000000001"
    assert message["role"] == "user"
    assert message["content"] == "Why is the DB slow?"
    assert message["metadata"] == {"source": "chat"}
    assert TIMESTAMP.match(message["timestamp"])


async def test_message_ids_are_fixed_width_and_sort_as_strings(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    ids = [(await append(client, sid, f"m{i}")).json()["message"]["message_id"] for i in range(12)]

    assert ids == [f"msg_{n:010d}" for n in range(1, 13)]
    assert sorted(ids) == ids


@pytest.mark.parametrize("role", ["user", "assistant", "system"])
async def test_every_documented_role_is_accepted(client: httpx.AsyncClient, role: str) -> None:
    sid = (await create_session(client))["session_id"]

    response = await append(client, sid, role=role)

    assert response.status_code == 201
    assert response.json()["message"]["role"] == role


@pytest.mark.parametrize("role", ["moderator", "USER", "", None, 1])
async def test_an_unknown_role_is_422(client: httpx.AsyncClient, role: Any) -> None:
    sid = (await create_session(client))["session_id"]

    response = await append(client, sid, role=role)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert (await get_session(client, sid))["message_count"] == 0


@pytest.mark.parametrize("content", ["", None, 42, ["a"]])
async def test_empty_or_non_text_content_is_422(client: httpx.AsyncClient, content: Any) -> None:
    sid = (await create_session(client))["session_id"]

    response = await append(client, sid, content=content)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert (await get_session(client, sid))["message_count"] == 0


async def test_message_size_limit_counts_utf8_bytes_not_characters(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_message_bytes=12) as client:
        sid = (await create_session(client))["session_id"]

        at_limit = await append(client, sid, "é" * 6)  # 6 characters, 12 bytes
        over_limit = await append(client, sid, "é" * 7)  # 7 characters, 14 bytes
        ascii_over = await append(client, sid, "a" * 13)
        emoji_over = await append(client, sid, "🙂" * 4)  # 4 characters, 16 bytes

        assert at_limit.status_code == 201
        for response in (over_limit, ascii_over, emoji_over):
            assert response.status_code == 413
            assert response.json()["code"] == "message_too_large"
        assert (await get_session(client, sid))["message_count"] == 1


async def test_default_message_limit_is_65536_bytes(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    assert (await append(client, sid, "x" * 65536)).status_code == 201
    response = await append(client, sid, "x" * 65537)

    assert response.status_code == 413
    assert response.json()["code"] == "message_too_large"


# ---- what an append changes on the session ---------------------------------


async def test_first_message_moves_an_active_session_to_in_progress(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    assert (await get_session(client, sid))["status"] == "active"

    await append(client, sid, role="assistant")

    assert (await get_session(client, sid))["status"] == "in_progress"
    listed = await client.get("/api/v1/sessions", params={"status": "in_progress"}, headers=user())
    assert [s["session_id"] for s in listed.json()["sessions"]] == [sid]
    listed = await client.get("/api/v1/sessions", params={"status": "active"}, headers=user())
    assert listed.json()["sessions"] == []


async def test_a_message_leaves_a_completed_session_completed(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    patched = await client.patch(
        f"/api/v1/sessions/{sid}", json={"status": "completed"}, headers=user()
    )
    assert patched.status_code == 200, patched.text

    assert (await append(client, sid)).status_code == 201

    assert (await get_session(client, sid))["status"] == "completed"


async def test_first_user_message_titles_an_untitled_session_at_a_word_boundary(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    content = (
        "Our production Postgres cluster started timing out on every write after the "
        "upgrade last night"
    )

    await append(client, sid, content)

    title = (await get_session(client, sid))["title"]
    assert 30 <= len(title) <= 61
    stem = title.rstrip("…")
    assert content.startswith(stem)
    assert content[len(stem)] == " ", "cut in the middle of a word"


async def test_a_short_first_user_message_becomes_the_whole_title(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]

    await append(client, sid, "  DB   timeouts\n")

    assert (await get_session(client, sid))["title"] == "DB timeouts"


async def test_only_the_first_user_message_titles_the_session(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    await append(client, sid, "Hello, I am your assistant", role="assistant")
    assert (await get_session(client, sid))["title"] is None
    await append(client, sid, "Disk full on node 3")
    await append(client, sid, "Also the CPU is pegged")

    assert (await get_session(client, sid))["title"] == "Disk full on node 3"


async def test_a_titled_session_keeps_its_title(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, title="My own title"))["session_id"]

    await append(client, sid, "Something else entirely")

    assert (await get_session(client, sid))["title"] == "My own title"


async def test_derived_title_is_searchable(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid, "Kafka consumer lag keeps growing")

    found = await client.post("/api/v1/sessions/search", json={"query": "kafka"}, headers=user())

    assert found.status_code == 200
    assert [s["session_id"] for s in found.json()["sessions"]] == [sid]


async def test_append_updates_count_last_activity_and_expiry(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    created = await create_session(client, timeout_minutes=30)
    sid = created["session_id"]
    await asyncio.sleep(0.01)  # so the server clock has moved on

    message = (await append(client, sid)).json()["message"]

    session = await get_session(client, sid)
    assert session["message_count"] == 1
    assert session["last_activity_at"] == message["timestamp"]
    assert parse(session["last_activity_at"]) > parse(created["last_activity_at"])
    expires = parse(session["expires_at"])
    assert expires == parse(session["last_activity_at"]) + timedelta(minutes=30)
    expires_ms = int(expires.timestamp() * 1000)
    for key in (KEYS.session("u1", sid), KEYS.messages("u1", sid)):
        assert await redis.pexpiretime(key) == expires_ms


# ---- reading ------------------------------------------------------------------


async def test_get_one_message_returns_it_as_appended(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid, "first")
    appended = (await append(client, sid, "second", "assistant", metadata={"k": [1]})).json()

    response = await client.get(f"{messages_url(sid)}/msg_0000000002", headers=user())

    assert response.status_code == 200
    assert response.json() == appended["message"]


@pytest.mark.parametrize(
    "message_id", ["msg_0000000002", "msg_0000000000", "msg_1", "msg_00000000001", "nope"]
)
async def test_a_missing_message_is_404_message_not_found(
    client: httpx.AsyncClient, message_id: str
) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid)

    response = await client.get(f"{messages_url(sid)}/{message_id}", headers=user())

    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"


async def test_include_messages_embeds_the_newest_messages_oldest_first_up_to_limit(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    for i in range(1, 6):
        await append(client, sid, f"m{i}")

    bounded = await get_session(client, sid, include_messages="true", limit=3)
    everything = await get_session(client, sid, include_messages="true")
    plain = await get_session(client, sid)

    assert [m["content"] for m in bounded["messages"]] == ["m3", "m4", "m5"]
    assert bounded["message_count"] == 5
    assert [m["message_id"] for m in everything["messages"]] == [
        f"msg_{n:010d}" for n in range(1, 6)
    ]
    assert "messages" not in plain


@pytest.mark.parametrize("limit", [0, 501, "many"])
async def test_include_messages_limit_is_bounded(client: httpx.AsyncClient, limit: Any) -> None:
    sid = (await create_session(client))["session_id"]

    response = await client.get(
        f"/api/v1/sessions/{sid}",
        params={"include_messages": "true", "limit": limit},
        headers=user(),
    )

    assert response.status_code == 422


# ---- limits and read-only sessions ------------------------------------------------


async def test_a_full_session_rejects_appends_with_409_session_full(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_messages_per_session=3) as client:
        sid = (await create_session(client))["session_id"]
        for i in range(3):
            assert (await append(client, sid, f"m{i}")).status_code == 201

        response = await append(client, sid, "one too many")

        assert response.status_code == 409
        assert response.json()["code"] == "session_full"
        assert (await get_session(client, sid))["message_count"] == 3
        assert await redis.xlen(KEYS.messages("u1", sid)) == 3


async def test_an_archived_session_rejects_appends_with_409_session_archived(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid)
    archived = await client.post(f"/api/v1/sessions/{sid}/archive", headers=user())
    assert archived.status_code == 200, archived.text

    response = await append(client, sid, "late")

    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"
    assert (await get_session(client, sid))["message_count"] == 1
    assert await redis.xlen(KEYS.messages("u1", sid)) == 1
    readable = await client.get(messages_url(sid), headers=user())
    assert [m["content"] for m in readable.json()["messages"]] == ["hello"]


async def test_a_restored_session_accepts_appends_again(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await client.post(f"/api/v1/sessions/{sid}/archive", headers=user())
    restored = await client.post(f"/api/v1/sessions/{sid}/restore", headers=user())
    assert restored.status_code == 200, restored.text

    response = await append(client, sid)

    assert response.status_code == 201
    assert response.json()["total_messages"] == 1


# ---- deletion and expiry -----------------------------------------------------------


async def test_deleting_a_session_removes_its_messages_and_idempotency_records(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    headers = user(**{"Idempotency-Key": "retry-me"})
    first = await client.post(
        messages_url(sid), json={"role": "user", "content": "x"}, headers=headers
    )
    assert first.status_code == 201
    messages_key, idem_key = KEYS.messages("u1", sid), keys_of("u1", sid).idempotency
    assert await redis.exists(messages_key, idem_key) == 2

    deleted = await client.delete(f"/api/v1/sessions/{sid}", headers=user())

    assert deleted.status_code == 204
    assert await redis.exists(messages_key, idem_key) == 0
    assert [key async for key in redis.scan_iter(match=f"*{sid}*")] == []
    retried = await client.post(
        messages_url(sid), json={"role": "user", "content": "x"}, headers=headers
    )
    assert retried.status_code == 404
    assert retried.json()["code"] == "session_not_found"


async def test_messages_and_idempotency_records_share_the_sessions_deadline(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    await client.post(
        messages_url(sid),
        json={"role": "user", "content": "x"},
        headers=user(**{"Idempotency-Key": "k1"}),
    )
    session = await get_session(client, sid)
    deadline = int(parse(session["expires_at"]).timestamp() * 1000)

    for key in (KEYS.session("u1", sid), KEYS.messages("u1", sid), keys_of("u1", sid).idempotency):
        assert await redis.pexpiretime(key) == deadline, key


async def test_an_expired_sessions_messages_expire_with_it(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=2) as client:
        sid = (await create_session(client))["session_id"]
        assert (await append(client, sid)).status_code == 201
        messages_key = KEYS.messages("u1", sid)
        assert await redis.xlen(messages_key) == 1

        for _ in range(200):  # the session lives 2 s; give a loaded machine 20 s
            if (await client.get(f"/api/v1/sessions/{sid}", headers=user())).status_code == 404:
                break
            await asyncio.sleep(0.1)

        assert await redis.exists(messages_key) == 0
        response = await client.get(messages_url(sid), headers=user())
        assert response.status_code == 404
        assert response.json()["code"] == "session_not_found"
