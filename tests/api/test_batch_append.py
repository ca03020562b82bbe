"""POST /messages/batch: a whole agent turn in one call (issue 23, item 1).

All or nothing, the single append's rules and codes for each message (a tool result
may answer a call of an earlier message of the batch), one activity and one ETag
move, one Idempotency-Key for the batch, and the bounds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.api.fast import servable
from session_service.app import routes_in_order
from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API

KEYS = Keys("fms")


def call(cid: str, name: str = "kubectl") -> dict[str, Any]:
    return {"id": cid, "name": name, "arguments": {"cmd": f"get pods {cid}"}}


def turn(tag: str = "t") -> list[dict[str, Any]]:
    """An agent turn: the assistant's two calls, both results, its answer."""
    return [
        {"role": "assistant", "content": "", "tool_calls": [call(f"{tag}-a"), call(f"{tag}-b")]},
        {"role": "tool", "content": "3 pods", "tool_call_id": f"{tag}-a"},
        {"role": "tool", "content": "2 nodes", "tool_call_id": f"{tag}-b", "token_count": 7},
        {"role": "assistant", "content": f"All healthy ({tag})", "metadata": {"model": "m"}},
    ]


async def batch(
    client: httpx.AsyncClient, sid: str, messages: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"{API}/{sid}/messages/batch", json={"messages": messages}, headers=user(**headers)
    )


async def single(
    client: httpx.AsyncClient, sid: str, message: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(f"{API}/{sid}/messages", json=message, headers=user(**headers))


async def all_messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    while True:
        data = (await client.get(f"{API}/{sid}/messages", params=params, headers=user())).json()
        messages += data["messages"]
        if not data["has_more"]:
            return messages
        params["after"] = data["next_cursor"]


async def state(client: httpx.AsyncClient, redis: Redis, sid: str) -> dict[str, Any]:
    """Everything a refused batch must leave as it was."""
    page = await client.get(f"{API}/{sid}/messages", headers=user())
    session = await client.get(f"{API}/{sid}", headers=user())
    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()
    totals = (await client.get(f"{API}/statistics", headers=user())).json()
    for volatile in ("last_activity_at", "expires_at", "duration_seconds"):
        stats.pop(volatile)
    return {
        "messages": page.json()["messages"],
        "messages_etag": page.headers["etag"],
        "session_etag": session.headers["etag"],
        "stats": stats,
        "user_messages": totals["total_messages"],
        "tools": await redis.hgetall(KEYS.tool_calls("u1", sid)),
        "stream": await redis.xlen(KEYS.messages("u1", sid)),
    }


def version(etag: str) -> int:
    """The counter of an ETag `"<created>.m<n>"` (or `.s<n>`)."""
    return int(etag.strip('"').rsplit(".", 1)[1][1:])


# ---- success ---------------------------------------------------------------------


async def test_a_turn_is_stored_in_order_and_answered_as_stored(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await single(client, sid, {"role": "user", "content": "Are the pods healthy?"})

    response = await batch(client, sid, turn())

    assert response.status_code == 201, response.text
    answered = response.json()["messages"]
    assert list(response.json()) == ["messages"]
    assert [m["message_id"] for m in answered] == [f"msg_{n:010d}" for n in range(2, 6)]
    stored = await all_messages(client, sid)
    assert stored[1:] == answered
    assert [m["role"] for m in answered] == ["assistant", "tool", "tool", "assistant"]
    assert answered[1]["tool_call_id"] == "t-a"
    assert answered[0]["tool_calls"] == [call("t-a"), call("t-b")]
    assert answered[3]["metadata"] == {"model": "m"}
    assert answered[2]["token_count"] == 7 and not answered[2]["token_count_estimated"]
    assert (
        response.headers["etag"]
        == (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    )


async def test_each_message_answers_as_the_single_append_would(
    client: httpx.AsyncClient,
) -> None:
    one = (await create_session(client))["session_id"]
    other = (await create_session(client))["session_id"]
    answered = (await batch(client, one, turn())).json()["messages"]
    singles = [(await single(client, other, m)).json()["message"] for m in turn()]
    for a, b in zip(answered, singles, strict=True):
        a.pop("timestamp")
        b.pop("timestamp")
    assert answered == singles


async def test_a_tool_result_answers_a_call_made_earlier_in_the_same_batch(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    assert (await batch(client, sid, turn())).status_code == 201

    # The calls were answered by the batch: a second answer is refused, as for singles.
    again = await single(client, sid, {"role": "tool", "content": "x", "tool_call_id": "t-a"})
    assert again.status_code == 409
    assert again.json()["code"] == "tool_call_already_answered"
    # A call of an earlier batch is answered by a later one.
    calls = [{"role": "assistant", "content": "", "tool_calls": [call("later")]}]
    assert (await batch(client, sid, calls)).status_code == 201
    answer = [{"role": "tool", "content": "done", "tool_call_id": "later"}]
    response = await batch(client, sid, answer)
    assert response.status_code == 201, response.text
    assert response.json()["messages"][0]["tool_call_id"] == "later"


async def test_the_first_user_message_titles_the_session_and_starts_it(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    messages = [
        {"role": "system", "content": "You are a helpful SRE."},
        {"role": "user", "content": "Disk full on node-7"},
        {"role": "user", "content": "and node-8"},
    ]
    assert (await batch(client, sid, messages)).status_code == 201
    session = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert session["title"] == "Disk full on node-7"
    assert session["status"] == "in_progress"
    assert session["message_count"] == 3


# ---- one activity, one ETag move, counters -------------------------------------------


async def test_a_batch_moves_each_etag_once_and_counts_as_one_activity(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await single(client, sid, {"role": "user", "content": "hi"})
    before_m = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    before_s = (await client.get(f"{API}/{sid}", headers=user())).headers["etag"]

    response = await batch(client, sid, turn())

    after_m = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    after_s = (await client.get(f"{API}/{sid}", headers=user())).headers["etag"]
    assert response.headers["etag"] == after_m
    assert version(after_m) == version(before_m) + 1
    assert version(after_s) == version(before_s) + 1
    # The previous ETag is the one If-Match names for the next write.
    stale = await batch(client, sid, [{"role": "user", "content": "x"}], **{"If-Match": before_m})
    assert stale.status_code == 412


async def test_stats_and_token_counters_are_the_sums_of_the_stored_messages(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    messages = [
        *turn("one"),
        {"role": "user", "content": "é" * 30, "token_count": 1000},
        {"role": "system", "content": "be brief"},
        *turn("two"),
    ]
    assert (await batch(client, sid, messages)).status_code == 201
    await single(client, sid, {"role": "user", "content": "thanks", "token_count": 3})

    stored = await all_messages(client, sid)
    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()
    totals = (await client.get(f"{API}/statistics", headers=user())).json()
    assert stats["message_count"] == len(stored) == len(messages) + 1
    assert stats["total_tokens"] == sum(m["token_count"] for m in stored)
    for role in ("user", "assistant", "system", "tool"):
        mine = [m for m in stored if m["role"] == role]
        assert stats[f"{role}_message_count"] == len(mine)
        assert stats["total_tokens_by_role"][role] == sum(m["token_count"] for m in mine)
    assert totals["total_messages"] == len(stored)


# ---- all or nothing --------------------------------------------------------------------

LONG = "x" * 70_000  # over MAX_MESSAGE_BYTES (65536)
FAILURES: dict[str, tuple[list[dict[str, Any]], int, int, str]] = {
    # name: (batch, index at fault, status, code)
    "invalid role": (
        [*turn(), {"role": "robot", "content": "x"}], 4, 422, "validation_error",
    ),
    "empty content": (
        [{"role": "user", "content": "a"}, {"role": "user", "content": ""}], 1, 422,
        "validation_error",
    ),
    "content too large": (
        [{"role": "user", "content": "a"}, {"role": "user", "content": LONG}], 1, 413,
        "message_too_large",
    ),
    "unknown tool call": (
        [*turn()[:2], {"role": "tool", "content": "x", "tool_call_id": "nope"}], 2, 422,
        "unknown_tool_call",
    ),
    "answer before the call": (
        [turn()[1], turn()[0]], 0, 422, "unknown_tool_call",
    ),
    "answered twice in the batch": (
        [*turn()[:2], turn()[1]], 2, 409, "tool_call_already_answered",
    ),
    "duplicate call id in the batch": (
        [turn()[0], {"role": "user", "content": "u"}, turn()[0]], 2, 409, "duplicate_tool_call",
    ),
    "duplicate of a stored call id": (
        [{"role": "user", "content": "u"}, turn("stored")[0]], 1, 409, "duplicate_tool_call",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(FAILURES))
async def test_a_refused_message_at_index_k_stores_nothing_and_is_named(
    client: httpx.AsyncClient, redis: Redis, name: str
) -> None:
    messages, index, status, code = FAILURES[name]
    sid = (await create_session(client))["session_id"]
    await batch(client, sid, [{"role": "user", "content": "q"}, turn("stored")[0]])
    before = await state(client, redis, sid)

    response = await batch(client, sid, messages)

    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["index"] == index
    assert body["detail"].startswith(f"messages[{index}]")
    assert await state(client, redis, sid) == before


@pytest.mark.parametrize("name", list(FAILURES))
async def test_the_refusal_is_the_one_the_single_appends_would_meet(
    client: httpx.AsyncClient, name: str
) -> None:
    messages, index, status, code = FAILURES[name]
    sid = (await create_session(client))["session_id"]
    await batch(client, sid, [{"role": "user", "content": "q"}, turn("stored")[0]])
    for message in messages[:index]:
        assert (await single(client, sid, message)).status_code == 201

    response = await single(client, sid, messages[index])

    assert (response.status_code, response.json()["code"]) == (status, code)
    assert "index" not in response.json()


async def test_an_unknown_or_archived_session_refuses_the_batch(
    client: httpx.AsyncClient,
) -> None:
    missing = await batch(client, "sess_" + "0" * 32, [{"role": "robot"}])
    assert missing.status_code == 404
    assert missing.json()["code"] == "session_not_found"
    assert "index" not in missing.json()
    sid = (await create_session(client))["session_id"]
    await client.post(f"{API}/{sid}/archive", headers=user())
    archived = await batch(client, sid, turn())
    assert archived.status_code == 409
    assert archived.json()["code"] == "session_archived"
    assert "index" not in archived.json()


# ---- If-Match -------------------------------------------------------------------------


async def test_if_match_holds_the_batch_to_the_etag_the_caller_read(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    tag = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    await single(client, sid, {"role": "user", "content": "someone else wrote"})
    before = await state(client, redis, sid)

    stale = await batch(client, sid, turn(), **{"If-Match": tag})

    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    assert stale.json()["etag"] == stale.headers["etag"] == before["messages_etag"]
    assert await state(client, redis, sid) == before
    current = await batch(client, sid, turn(), **{"If-Match": before["messages_etag"]})
    assert current.status_code == 201
    star = await batch(client, sid, [{"role": "user", "content": "ok"}], **{"If-Match": "*"})
    assert star.status_code == 201


# ---- Idempotency-Key -----------------------------------------------------------------


async def test_a_retried_batch_replays_the_stored_result_and_stores_nothing(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await batch(client, sid, turn(), **{"Idempotency-Key": "turn-1"})
    await single(client, sid, {"role": "user", "content": "next"})

    retry = await batch(client, sid, turn(), **{"Idempotency-Key": "turn-1"})

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert len(await all_messages(client, sid)) == 5
    # A replay changes nothing; its ETag is the collection's now.
    now = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    assert retry.headers["etag"] == now
    # Even when the If-Match it carried no longer holds (its own batch moved the ETag).
    tag = first.headers["etag"]
    stale = await batch(client, sid, turn(), **{"Idempotency-Key": "turn-1", "If-Match": tag})
    assert stale.status_code == 201 and stale.json() == first.json()


async def test_the_same_key_with_another_batch_or_a_single_append_is_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    assert (await batch(client, sid, turn(), **{"Idempotency-Key": "k"})).status_code == 201
    assert (await single(client, sid, turn()[3], **{"Idempotency-Key": "s"})).status_code == 201
    before = await state(client, redis, sid)

    refused = [
        await batch(client, sid, turn()[:3], **{"Idempotency-Key": "k"}),
        await batch(client, sid, [turn()[3]], **{"Idempotency-Key": "s"}),
        await single(client, sid, turn()[3], **{"Idempotency-Key": "k"}),
    ]

    for response in refused:
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "idempotency_key_reused"
        assert "index" not in response.json()
    assert await state(client, redis, sid) == before


async def test_concurrent_retries_of_one_batch_store_it_exactly_once(
    make_client: ClientFactory,
) -> None:
    async with make_client() as one, make_client() as two, make_client() as three:
        sid = (await create_session(one))["session_id"]
        clients = [one, two, three] * 8
        responses = await asyncio.gather(
            *(batch(c, sid, turn(), **{"Idempotency-Key": "same-turn"}) for c in clients)
        )
        assert {r.status_code for r in responses} == {201}
        assert all(r.json() == responses[0].json() for r in responses)
        stored = await all_messages(one, sid)
        assert [m["message_id"] for m in stored] == [f"msg_{n:010d}" for n in range(1, 5)]
        assert stored == responses[0].json()["messages"]
        stats = (await one.get(f"{API}/{sid}/stats", headers=user())).json()
        assert stats["message_count"] == 4


# ---- bounds -------------------------------------------------------------------------------


async def test_a_batch_holds_1_to_64_messages(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    many = [{"role": "user", "content": f"m{i}"} for i in range(65)]

    for size in (0, 65):
        response = await batch(client, sid, many[:size])
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
        assert "index" not in response.json()
    assert (await client.get(f"{API}/{sid}", headers=user())).json()["message_count"] == 0

    response = await batch(client, sid, many[:64])
    assert response.status_code == 201
    assert [m["content"] for m in response.json()["messages"]] == [f"m{i}" for i in range(64)]
    one = await batch(client, sid, many[64:])
    assert one.status_code == 201
    assert one.json()["messages"][0]["message_id"] == "msg_0000000065"


async def test_a_batch_that_does_not_fit_is_session_full_and_stores_nothing(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_messages_per_session=6) as client:
        sid = (await create_session(client))["session_id"]
        await batch(
            client, sid, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        )
        before = await state(client, redis, sid)

        response = await batch(client, sid, [*turn(), {"role": "user", "content": "fifth"}])

        assert response.status_code == 409
        assert response.json()["code"] == "session_full"
        assert response.json()["index"] == 4  # the first message with no room
        assert await state(client, redis, sid) == before
        assert (await batch(client, sid, turn())).status_code == 201
        full = await batch(client, sid, [{"role": "user", "content": "x"}])
        assert (full.status_code, full.json()["index"]) == (409, 0)


async def test_the_body_is_bounded_by_max_request_bytes(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_request_bytes=8192) as client:
        sid = (await create_session(client))["session_id"]
        messages = [{"role": "user", "content": "y" * 1000} for _ in range(9)]

        response = await batch(client, sid, messages)

        assert response.status_code == 413
        assert response.json()["code"] == "request_too_large"
        assert await redis.xlen(KEYS.messages("u1", sid)) == 0
        assert (await batch(client, sid, messages[:7])).status_code == 201


# ---- concurrency --------------------------------------------------------------------------

WRITERS = 16
ROUNDS = 6


async def writer(client: httpx.AsyncClient, sid: str, w: int) -> list[list[dict[str, Any]]]:
    """Alternately a batch of 1-4 messages and a single append; what each call stored."""
    stored = []
    for r in range(ROUNDS):
        if r % 2:
            message = {"role": "user", "content": f"w{w}-r{r}-single"}
            response = await single(client, sid, message)
            assert response.status_code == 201, response.text
            stored.append([response.json()["message"]])
        else:
            size = 1 + (w + r) % 4
            messages = [{"role": "assistant", "content": f"w{w}-r{r}-{i}"} for i in range(size)]
            response = await batch(client, sid, messages)
            assert response.status_code == 201, response.text
            stored.append(response.json()["messages"])
    return stored


async def test_concurrent_batches_and_appends_lose_and_duplicate_nothing(
    make_client: ClientFactory,
) -> None:
    async with make_client() as one, make_client() as two:
        sid = (await create_session(one))["session_id"]

        calls = await asyncio.gather(*(writer((one, two)[w % 2], sid, w) for w in range(WRITERS)))

        acked = [group for groups in calls for group in groups]
        stored = await all_messages(one, sid)
        total = sum(len(group) for group in acked)
        assert [m["message_id"] for m in stored] == [f"msg_{n:010d}" for n in range(1, total + 1)]
        by_id = {m["message_id"]: m for m in stored}
        for group in acked:
            assert [by_id[m["message_id"]] for m in group] == group
            # A batch is one step: nothing interleaves with its messages.
            seqs = [int(m["message_id"][4:]) for m in group]
            assert seqs == list(range(seqs[0], seqs[0] + len(group)))
        stats = (await one.get(f"{API}/{sid}/stats", headers=user())).json()
        assert stats["message_count"] == total
        assert stats["total_tokens"] == sum(m["token_count"] for m in stored)


async def test_the_fast_path_serves_the_batch_route(make_client: ClientFactory) -> None:
    """Not forwarded to FastAPI: the fast path solves it (and tests/api runs it both ways)."""
    async with make_client() as client:
        routes = routes_in_order(client.app)  # type: ignore[attr-defined]
        path = f"{API}/{{session_id}}/messages/batch"
        (route,) = [r for r in routes if getattr(r, "path", None) == path]
        assert servable(route) is not None


async def test_a_rewind_before_the_batch_forgets_its_key_and_one_into_it_spends_it(
    client: httpx.AsyncClient,
) -> None:
    """As for single appends, a rewind forgets the keys of what it removed: a retry of a
    batch it removed whole stores it anew. One that cut the batch keeps the key, and a
    retry is refused: storing the batch again would duplicate its kept messages."""
    sid = (await create_session(client))["session_id"]
    await single(client, sid, {"role": "user", "content": "first"})
    first = await batch(client, sid, turn("a"), **{"Idempotency-Key": "whole"})
    rewind = f"{API}/{sid}/rewind"
    assert (
        await client.post(rewind, json={"to_message_id": "msg_0000000001"}, headers=user())
    ).status_code == 200

    again = await batch(client, sid, turn("a"), **{"Idempotency-Key": "whole"})

    assert again.status_code == 201, again.text
    assert [m["message_id"] for m in again.json()["messages"]] != [
        m["message_id"] for m in first.json()["messages"]
    ]
    assert len(await all_messages(client, sid)) == 5
    last_two = again.json()["messages"][1]["message_id"]
    assert (
        await client.post(rewind, json={"to_message_id": last_two}, headers=user())
    ).status_code == 200

    cut = await batch(client, sid, turn("a"), **{"Idempotency-Key": "whole"})

    assert cut.status_code == 422
    assert cut.json()["code"] == "idempotency_key_reused"
    assert len(await all_messages(client, sid)) == 3
