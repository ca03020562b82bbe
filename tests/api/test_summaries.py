"""Summaries that keep the originals (issue 13, item 4), against a real server."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, mid


async def conversation(client: httpx.AsyncClient, count: int, user_id: str = "u1") -> str:
    sid: str = (await create_session(client, user_id))["session_id"]
    for i in range(count):
        response = await client.post(
            f"{API}/{sid}/messages",
            json={"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i + 1}"},
            headers=user(user_id),
        )
        assert response.status_code == 201, response.text
    return sid


async def post_summary(client: httpx.AsyncClient, sid: str, **body: Any) -> httpx.Response:
    body.setdefault("content", "The pool was exhausted; raised max_connections.")
    return await client.post(f"{API}/{sid}/summaries", json=body, headers=user())


async def listed(client: httpx.AsyncClient, sid: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{API}/{sid}/summaries", params=params, headers=user())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_a_summary_is_created_with_its_fields(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 3)

    response = await post_summary(
        client, sid, covers_through=mid(2), token_count=12, metadata={"model": "m-1"}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"summary_id", "covers_through", "content", "token_count", "created_at"}
    assert body["summary_id"] == "sum_0000000001"
    assert body["covers_through"] == mid(2)
    assert body["content"] == "The pool was exhausted; raised max_connections."
    assert body["token_count"] == 12
    assert body["token_count_estimated"] is False
    assert body["metadata"] == {"model": "m-1"}
    assert body["created_at"].endswith("Z")


async def test_without_a_count_the_summary_is_estimated(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 1)

    body = (await post_summary(client, sid, content="x" * 9, covers_through=mid(1))).json()

    assert body["token_count"] == 3
    assert body["token_count_estimated"] is True


@pytest.mark.parametrize("through", [mid(4), mid(999), "msg_0000000000"])
async def test_covers_through_must_be_an_existing_message(
    client: httpx.AsyncClient, through: str
) -> None:
    sid = await conversation(client, 3)

    response = await post_summary(client, sid, covers_through=through)

    assert response.status_code == 422
    assert response.json()["code"] == "unknown_message"
    assert (await listed(client, sid))["summaries"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"covers_through": "m1"},
        {"covers_through": 1},
        {},
        {"covers_through": "msg_0000000001", "content": ""},
        {"covers_through": "msg_0000000001", "token_count": -1},
        {"covers_through": "msg_0000000001", "token_count": 1_000_001},
        {"covers_through": "msg_0000000001", "metadata": [1]},
        {"covers_through": "msg_0000000001", "extra": 1},
    ],
)
async def test_invalid_summaries_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    sid = await conversation(client, 1)

    response = await client.post(
        f"{API}/{sid}/summaries", json={"content": "s", **body}, headers=user()
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_summary_content_over_max_message_bytes_is_413(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_message_bytes=100) as client:
        sid = await conversation(client, 1)

        response = await post_summary(client, sid, content="é" * 51, covers_through=mid(1))

    assert response.status_code == 413
    assert response.json()["code"] == "message_too_large"


async def test_a_summary_may_not_go_back_but_may_repeat_the_latest_reach(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 4)
    assert (await post_summary(client, sid, covers_through=mid(3))).status_code == 201

    back = await post_summary(client, sid, covers_through=mid(2))
    same = await post_summary(client, sid, covers_through=mid(3))
    further = await post_summary(client, sid, covers_through=mid(4))

    assert back.status_code == 409
    assert back.json()["code"] == "summary_out_of_order"
    assert same.status_code == further.status_code == 201
    assert [s["covers_through"] for s in (await listed(client, sid))["summaries"]] == [
        mid(4),
        mid(3),
        mid(3),
    ]


async def test_an_archived_session_refuses_a_summary(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 2)
    assert (await client.post(f"{API}/{sid}/archive", headers=user())).status_code == 200

    response = await post_summary(client, sid, covers_through=mid(1))

    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"


async def test_summaries_are_listed_newest_first_in_pages(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 5)
    for n in range(1, 6):
        assert (await post_summary(client, sid, covers_through=mid(n))).status_code == 201

    first = await listed(client, sid, limit=2)
    second = await listed(client, sid, limit=2, before=first["next_cursor"])
    last = await listed(client, sid, limit=2, before=second["next_cursor"])

    seen = [s["summary_id"] for page in (first, second, last) for s in page["summaries"]]
    assert seen == [f"sum_{n:010d}" for n in range(5, 0, -1)]
    assert (first["total"], first["has_more"], last["has_more"]) == (5, True, False)
    assert last["next_cursor"] is None
    assert (await listed(client, sid, before="sum_0000000000"))["summaries"] == []


async def test_nothing_is_deleted_and_the_export_carries_the_summaries(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 4)
    before = (await client.get(f"{API}/{sid}/messages", headers=user())).json()
    first = (await post_summary(client, sid, covers_through=mid(2))).json()
    second = (await post_summary(client, sid, content="later", covers_through=mid(3))).json()

    after = (await client.get(f"{API}/{sid}/messages", headers=user())).json()
    one = await client.get(f"{API}/{sid}/messages/{mid(1)}", headers=user())
    exported = (await client.get(f"{API}/{sid}/export", headers=user())).json()
    markdown = (
        await client.get(f"{API}/{sid}/export", params={"format": "markdown"}, headers=user())
    ).text

    assert after == before
    assert one.status_code == 200
    assert exported["messages"] == before["messages"]
    assert exported["summaries"] == [first, second]  # oldest first, like the messages
    assert markdown.index("## Conversation") < markdown.index("## Summaries")
    assert f"### sum_0000000001 · covers through {mid(2)}" in markdown
    assert "later" in markdown.split("## Summaries")[1]


async def test_summaries_count_toward_the_message_bound(make_client: ClientFactory) -> None:
    async with make_client(max_messages_per_session=3) as client:
        sid = await conversation(client, 2)
        assert (await post_summary(client, sid, covers_through=mid(2))).status_code == 201

        full = await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": "x"}, headers=user()
        )
        again = await post_summary(client, sid, covers_through=mid(2))

    assert full.status_code == again.status_code == 409
    assert full.json()["code"] == again.json()["code"] == "session_full"


async def test_summaries_are_deleted_with_the_session_and_share_its_deadline(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = await conversation(client, 1)
    await post_summary(client, sid, covers_through=mid(1))
    keys = client.app.state.store.keys  # type: ignore[attr-defined]

    deadline = await redis.pexpiretime(keys.summaries("u1", sid))
    assert deadline > 0
    assert deadline == await redis.pexpiretime(keys.session("u1", sid))

    assert (await client.delete(f"{API}/{sid}", headers=user())).status_code == 204
    assert [key async for key in redis.scan_iter(match=f"*{sid}*")] == []


async def test_racing_summaries_and_appends_stay_consistent(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 10)
    rng = random.Random(13)

    async def add(i: int) -> httpx.Response:
        return await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": f"r{i}"}, headers=user()
        )

    async def summary(i: int) -> httpx.Response:
        # Reaches somewhere into what exists or is being appended.
        return await post_summary(
            client, sid, content=f"s{i}", covers_through=mid(rng.randint(1, 40))
        )

    ops = [add(i) for i in range(30)] + [summary(i) for i in range(30)]
    rng.shuffle(ops)
    results = await asyncio.gather(*ops)

    appended = [r for r in results if r.request.url.path.endswith("/messages")]
    accepted = [r.json() for r in results if r.status_code == 201 and "summary_id" in r.json()]
    refused = [r.json()["code"] for r in results if r.status_code != 201]
    assert all(r.status_code == 201 for r in appended), [
        (r.status_code, r.text) for r in appended if r.status_code != 201
    ]
    assert set(refused) <= {"summary_out_of_order", "unknown_message"}
    assert accepted
    listing = (await listed(client, sid, limit=100))["summaries"]
    assert sorted(s["summary_id"] for s in listing) == sorted(s["summary_id"] for s in accepted)
    # In the order they were stored, each reaches at least as far as the one before.
    reach = [s["covers_through"] for s in reversed(listing)]
    assert reach == sorted(reach)
    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()
    assert stats["message_count"] == 40
    window = (await client.get(f"{API}/{sid}/window?max_tokens=100000", headers=user())).json()
    assert window["summary"] == listing[0]
    newest = int(listing[0]["covers_through"][4:])
    assert [m["message_id"] for m in window["messages"]] == [mid(n) for n in range(newest + 1, 41)]


async def test_a_retried_summary_with_its_idempotency_key_is_stored_once(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 3)
    other = await conversation(client, 3)
    body = {"content": "pool exhausted", "covers_through": mid(2)}
    headers = user(**{"Idempotency-Key": "sum-1"})

    first = await client.post(f"{API}/{sid}/summaries", json=body, headers=headers)
    later = await post_summary(client, sid, covers_through=mid(3))  # the reach moves on
    again = await client.post(f"{API}/{sid}/summaries", json=body, headers=headers)
    changed = await client.post(
        f"{API}/{sid}/summaries", json={**body, "content": "other"}, headers=headers
    )
    elsewhere = await client.post(f"{API}/{other}/summaries", json=body, headers=headers)

    assert first.status_code == again.status_code == elsewhere.status_code == 201
    assert later.status_code == 201
    assert again.json() == first.json()
    assert changed.status_code == 422
    assert changed.json()["code"] == "idempotency_key_reused"
    assert (await listed(client, sid))["total"] == 2
    assert elsewhere.json()["summary_id"] == "sum_0000000001"
