"""Safe retries with `Idempotency-Key` on POST /messages and POST /sessions (issue 3, item 3)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, epoch_ms, keys_of, wait_past

KEYS = Keys("fms")


def keyed(key: str, user_id: str = "u1") -> dict[str, str]:
    return user(user_id, **{"Idempotency-Key": key})


async def append(
    client: httpx.AsyncClient,
    sid: str,
    key: str | None,
    content: str = "hello",
    role: str = "user",
    **body: Any,
) -> httpx.Response:
    headers = keyed(key) if key is not None else user()
    return await client.post(
        f"{API}/{sid}/messages",
        json={"role": role, "content": content, **body},
        headers=headers,
    )


async def stored_messages(redis: Redis, sid: str, user_id: str = "u1") -> int:
    count: int = await redis.xlen(KEYS.messages(user_id, sid))
    return count


async def live_sessions(client: httpx.AsyncClient, user_id: str = "u1") -> list[str]:
    response = await client.get(API, headers=user(user_id))
    return [s["session_id"] for s in response.json()["sessions"]]


# ---- appends ------------------------------------------------------------------------


async def test_a_retried_append_returns_the_original_response_and_writes_nothing(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await append(client, sid, "k-1", "Is it DNS?", metadata={"a": 1})

    retry = await append(client, sid, "k-1", "Is it DNS?", metadata={"a": 1})

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert await stored_messages(redis, sid) == 1
    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()
    assert (stats["message_count"], stats["user_message_count"]) == (1, 1)


async def test_a_late_retry_returns_the_original_message_and_total(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await append(client, sid, "k-1", "first")
    await append(client, sid, None, "second")
    await append(client, sid, "k-2", "third")

    retry = await append(client, sid, "k-1", "first")

    assert retry.status_code == 201
    assert retry.json()["message"] == first.json()["message"]
    assert retry.json()["total_messages"] == 1
    assert await stored_messages(redis, sid) == 3


async def test_appends_without_a_key_are_never_deduplicated(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]

    one = await append(client, sid, None, "same")
    two = await append(client, sid, None, "same")

    assert one.json()["message"]["message_id"] != two.json()["message"]["message_id"]
    assert await stored_messages(redis, sid) == 2


@pytest.mark.parametrize(
    "changed",
    [
        {"content": "different"},
        {"role": "assistant"},
        {"metadata": {"a": 2}},
    ],
)
async def test_the_same_append_key_with_a_different_body_is_422(
    client: httpx.AsyncClient, redis: Redis, changed: dict[str, Any]
) -> None:
    sid = (await create_session(client))["session_id"]
    original: dict[str, Any] = {"role": "user", "content": "hello", "metadata": {"a": 1}}
    assert (await append(client, sid, "k-1", **original)).status_code == 201

    response = await append(client, sid, "k-1", **{**original, **changed})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await stored_messages(redis, sid) == 1


async def test_metadata_key_order_does_not_make_a_different_body(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await append(client, sid, "k-1", metadata={"a": 1, "b": 2})

    retry = await append(client, sid, "k-1", metadata={"b": 2, "a": 1})

    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert await stored_messages(redis, sid) == 1


async def test_concurrent_appends_with_one_key_write_once(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]

    responses = await asyncio.gather(*(append(client, sid, "same-key") for _ in range(32)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["message"]["message_id"] for r in responses}) == 1
    assert await stored_messages(redis, sid) == 1
    session = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert session["message_count"] == 1


async def test_a_retry_after_the_session_was_archived_still_replays(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await append(client, sid, "k-1")
    await client.post(f"{API}/{sid}/archive", headers=user())

    retry = await append(client, sid, "k-1")

    assert retry.status_code == 201
    assert retry.json()["message"] == first.json()["message"]


async def test_after_the_session_is_deleted_an_append_key_no_longer_replays(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await append(client, sid, "k-1")
    await client.delete(f"{API}/{sid}", headers=user())

    retry = await append(client, sid, "k-1")

    assert retry.status_code == 404
    assert retry.json()["code"] == "session_not_found"


async def test_an_append_key_is_forgotten_after_the_idempotency_ttl(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(idempotency_ttl_seconds=1) as client:
        sid = (await create_session(client))["session_id"]
        first = await append(client, sid, "k-1")
        # The record is forgotten once Redis's clock is past its time plus the TTL.
        await wait_past(redis, epoch_ms(first.json()["message"]["timestamp"]) + 1000)

        later = await append(client, sid, "k-1")

        assert later.status_code == 201
        assert later.json()["message"]["message_id"] != first.json()["message"]["message_id"]
        assert await stored_messages(redis, sid) == 2


async def test_expired_append_records_are_dropped_so_the_records_never_grow(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(idempotency_ttl_seconds=1) as client:
        sid = (await create_session(client))["session_id"]
        for i in range(25):
            last = await append(client, sid, f"old-{i}")
            assert last.status_code == 201
        assert await redis.hlen(keys_of("u1", sid).idempotency) == 25
        # Past the TTL of every record above, on the clock the script reads.
        await wait_past(redis, epoch_ms(last.json()["message"]["timestamp"]) + 1000)
        for i in range(3):
            assert (await append(client, sid, f"new-{i}")).status_code == 201
        # Each keyed append drops up to 10 expired records, so three drop all 25.
        fields = set(await redis.hkeys(keys_of("u1", sid).idempotency))
        assert len(fields) == 3
        assert await redis.zcard(keys_of("u1", sid).idempotency_age) == 3
        replay = await append(client, sid, "new-0")
        assert replay.status_code == 201
        assert replay.json()["message"]["message_id"] == "msg_0000000026"


# ---- creates ------------------------------------------------------------------------


async def test_a_retried_create_returns_the_same_session_and_creates_nothing(
    client: httpx.AsyncClient,
) -> None:
    body = {"title": "DB timeouts", "metadata": {"env": "prod"}}
    first = await client.post(API, json=body, headers=keyed("c-1"))

    retry = await client.post(API, json=body, headers=keyed("c-1"))

    assert first.status_code == retry.status_code == 201
    assert retry.json()["session_id"] == first.json()["session_id"]
    assert retry.json()["session_resumed"] is False
    assert await live_sessions(client) == [first.json()["session_id"]]


async def test_a_retried_create_that_created_by_client_id_replays_201_not_a_resume(
    client: httpx.AsyncClient,
) -> None:
    body = {"client_id": "ext-1"}
    first = await client.post(API, json=body, headers=keyed("c-1"))

    retry = await client.post(API, json=body, headers=keyed("c-1"))

    assert first.status_code == retry.status_code == 201
    assert retry.json()["session_id"] == first.json()["session_id"]
    assert retry.json()["session_resumed"] is False


async def test_a_retried_create_that_resumed_by_client_id_replays_200(
    client: httpx.AsyncClient,
) -> None:
    original = await create_session(client, client_id="ext-1")
    resumed = await client.post(API, json={"client_id": "ext-1"}, headers=keyed("c-1"))
    assert resumed.status_code == 200

    retry = await client.post(API, json={"client_id": "ext-1"}, headers=keyed("c-1"))

    assert retry.status_code == 200
    assert retry.json()["session_id"] == resumed.json()["session_id"] == original["session_id"]
    assert retry.json()["session_resumed"] is True
    assert await live_sessions(client) == [original["session_id"]]


async def test_the_same_create_key_with_a_different_body_is_422(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(API, json={"title": "one"}, headers=keyed("c-1"))

    response = await client.post(API, json={"title": "two"}, headers=keyed("c-1"))

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await live_sessions(client) == [first.json()["session_id"]]


async def test_concurrent_creates_with_one_key_create_one_session(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(client.post(API, json={"title": "t"}, headers=keyed("c-1")) for _ in range(24))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["session_id"] for r in responses}) == 1
    assert len(await live_sessions(client)) == 1


async def test_another_users_identical_key_is_independent(client: httpx.AsyncClient) -> None:
    mine = await client.post(API, json={"title": "t"}, headers=keyed("shared", "u1"))
    theirs = await client.post(API, json={"title": "other"}, headers=keyed("shared", "u2"))

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["session_id"] != theirs.json()["session_id"]
    assert theirs.json()["user_id"] == "u2"
    assert await live_sessions(client, "u2") == [theirs.json()["session_id"]]


async def test_after_the_session_is_deleted_a_create_key_no_longer_replays(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post(API, json={"title": "t"}, headers=keyed("c-1"))
    await client.delete(f"{API}/{first.json()['session_id']}", headers=user())

    retry = await client.post(API, json={"title": "t"}, headers=keyed("c-1"))

    assert retry.status_code == 201
    assert retry.json()["session_id"] != first.json()["session_id"]
    assert await live_sessions(client) == [retry.json()["session_id"]]


# ---- key bounds ---------------------------------------------------------------------

BAD_KEYS: list[bytes] = [b"", b"k" * 256, b"a\x01b", b"tab\there", b"del\x7f", "é".encode()]
GOOD_KEYS: list[bytes] = [b"k", b"k" * 255, b"~!@#$%^&*()_+{}|:<>?", b"550e8400-e29b-41d4"]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_malformed_key_on_append_is_422_and_writes_nothing(
    client: httpx.AsyncClient, redis: Redis, key: bytes
) -> None:
    sid = (await create_session(client))["session_id"]

    response = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "user", "content": "x"},
        headers=[(b"X-User-ID", b"u1"), (b"Idempotency-Key", key)],
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["field"] == "Idempotency-Key"
    assert await stored_messages(redis, sid) == 0


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_a_malformed_key_on_create_is_422_and_creates_nothing(
    client: httpx.AsyncClient, key: bytes
) -> None:
    response = await client.post(
        API, json={}, headers=[(b"X-User-ID", b"u1"), (b"Idempotency-Key", key)]
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert await live_sessions(client) == []


@pytest.mark.parametrize("key", GOOD_KEYS)
async def test_keys_of_1_to_255_printable_characters_are_accepted(
    client: httpx.AsyncClient, key: bytes
) -> None:
    headers = [(b"X-User-ID", b"u1"), (b"Idempotency-Key", key)]
    created = await client.post(API, json={}, headers=headers)
    sid = created.json()["session_id"]
    url = f"{API}/{sid}/messages"
    first = await client.post(url, json={"role": "user", "content": "x"}, headers=headers)
    retry = await client.post(url, json={"role": "user", "content": "x"}, headers=headers)

    assert created.status_code == first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
