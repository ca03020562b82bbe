"""Tool calls and tool results (issue 13, item 1), rule by rule, against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.domain.tokens import MAX_TOOL_ARGUMENTS_BYTES, MAX_TOOL_CALLS
from tests.conftest import create_session, user
from tests.helpers import API, appended

CALLS = [
    {"id": "call_1", "name": "get_metrics", "arguments": {"host": "db-1", "window": [5, "m"]}},
    {"id": "call_2", "name": "tail_logs", "arguments": '{"lines": 50}'},
]


async def post(client: httpx.AsyncClient, sid: str, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/{sid}/messages", json=body, headers=user())


async def count(client: httpx.AsyncClient, sid: str) -> int:
    response = await client.get(f"{API}/{sid}", headers=user())
    return int(response.json()["message_count"])


async def with_calls(client: httpx.AsyncClient) -> str:
    sid: str = (await create_session(client))["session_id"]
    await appended(client, sid, role="user", content="Why is db-1 slow?")
    await appended(client, sid, role="assistant", content="", tool_calls=CALLS)
    return sid


async def test_an_assistant_message_with_tool_calls_may_have_empty_content(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]

    message = await appended(client, sid, role="assistant", content="", tool_calls=CALLS)
    omitted = await appended(client, sid, role="assistant", tool_calls=[{"id": "c3", "name": "x"}])

    assert message["content"] == ""
    assert message["tool_calls"] == CALLS
    assert omitted["content"] == ""
    assert omitted["tool_calls"] == [{"id": "c3", "name": "x", "arguments": {}}]


async def test_tool_calls_and_results_round_trip_through_page_get_one_and_both_exports(
    client: httpx.AsyncClient,
) -> None:
    sid = await with_calls(client)
    result = await appended(
        client, sid, role="tool", content='{"p99_ms": 870}', tool_call_id="call_1"
    )

    page = (await client.get(f"{API}/{sid}/messages", headers=user())).json()["messages"]
    one_call = (await client.get(f"{API}/{sid}/messages/msg_0000000002", headers=user())).json()
    one_result = (await client.get(f"{API}/{sid}/messages/msg_0000000003", headers=user())).json()
    exported = (await client.get(f"{API}/{sid}/export", headers=user())).json()["messages"]
    included = await client.get(f"{API}/{sid}", params={"include_messages": "true"}, headers=user())
    markdown = (
        await client.get(f"{API}/{sid}/export", params={"format": "markdown"}, headers=user())
    ).text

    assert page[1] == one_call
    assert page[2] == one_result == result
    assert one_call["tool_calls"] == CALLS
    msg2_tokens = one_call["token_count"]
    assert one_call["role"] == "assistant"
    assert one_result["role"] == "tool"
    assert one_result["tool_call_id"] == "call_1"
    assert "tool_call_id" not in page[0] and "tool_calls" not in page[0]
    assert exported == page == included.json()["messages"]
    assert "tool call `call_1`: get_metrics" in markdown
    assert '"host":"db-1"' in markdown
    assert "result of tool call `call_1`" in markdown
    assert f"· {msg2_tokens} tokens (estimated)" in markdown
    assert '{"p99_ms": 870}' in markdown


async def test_a_result_naming_an_unknown_tool_call_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    sid = await with_calls(client)

    response = await post(client, sid, role="tool", content="42", tool_call_id="call_9")

    assert response.status_code == 422
    assert response.json()["code"] == "unknown_tool_call"
    assert await count(client, sid) == 2


async def test_a_call_of_another_session_is_unknown_here(client: httpx.AsyncClient) -> None:
    await with_calls(client)
    other = (await create_session(client))["session_id"]

    response = await post(client, other, role="tool", content="42", tool_call_id="call_1")

    assert response.status_code == 422
    assert response.json()["code"] == "unknown_tool_call"


async def test_a_second_result_for_the_same_call_is_409(client: httpx.AsyncClient) -> None:
    sid = await with_calls(client)
    await appended(client, sid, role="tool", content="first", tool_call_id="call_1")

    response = await post(client, sid, role="tool", content="second", tool_call_id="call_1")
    other = await post(client, sid, role="tool", content="other", tool_call_id="call_2")

    assert response.status_code == 409
    assert response.json()["code"] == "tool_call_already_answered"
    assert other.status_code == 201
    assert await count(client, sid) == 4


async def test_racing_results_for_one_call_store_exactly_one(client: httpx.AsyncClient) -> None:
    sid = await with_calls(client)

    responses = await asyncio.gather(
        *(post(client, sid, role="tool", content=f"r{i}", tool_call_id="call_1") for i in range(8))
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7
    assert await count(client, sid) == 3


async def test_a_retried_result_with_its_idempotency_key_replays_instead_of_409(
    client: httpx.AsyncClient,
) -> None:
    sid = await with_calls(client)
    body = {"role": "tool", "content": "ok", "tool_call_id": "call_2"}
    headers = user(**{"Idempotency-Key": "result-1"})

    first = await client.post(f"{API}/{sid}/messages", json=body, headers=headers)
    again = await client.post(f"{API}/{sid}/messages", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await count(client, sid) == 3


async def test_a_tool_call_id_already_used_in_the_session_is_409(
    client: httpx.AsyncClient,
) -> None:
    sid = await with_calls(client)

    response = await post(client, sid, role="assistant", tool_calls=[CALLS[0]])

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_tool_call"
    assert "call_1" in response.json()["detail"]
    assert await count(client, sid) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"role": "tool", "content": "42"},  # a result must name its call
        {"role": "user", "content": "hi", "tool_call_id": "call_1"},
        {"role": "user", "content": "hi", "tool_calls": CALLS},
        {"role": "system", "content": "", "tool_calls": CALLS},
        {"role": "assistant", "content": ""},
        {"role": "assistant", "tool_calls": []},
        {"role": "assistant", "tool_calls": [CALLS[0], CALLS[0]]},
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "n", "extra": 1}]},
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "bad name"}]},
        {"role": "assistant", "tool_calls": [{"id": "c" * 129, "name": "n"}]},
        {"role": "assistant", "tool_calls": [{"id": "", "name": "n"}]},
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "n" * 129}]},
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "n", "arguments": 5}]},
        {"role": "assistant", "tool_calls": [{"id": "c", "name": "n", "arguments": [1]}]},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "name": "n", "arguments": "x" * (MAX_TOOL_ARGUMENTS_BYTES + 1)}
            ],
        },
        {
            "role": "assistant",
            "tool_calls": [{"id": f"c{i}", "name": "n"} for i in range(MAX_TOOL_CALLS + 1)],
        },
        {"role": "tool", "content": "42", "tool_call_id": "has space"},
        {"role": "robot", "content": "hi"},
    ],
)
async def test_tool_fields_out_of_bounds_are_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    sid = await with_calls(client)

    response = await post(client, sid, **body)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert await count(client, sid) == 2


async def test_the_largest_documented_tool_calls_are_accepted(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    calls = [
        {"id": f"c{i:03d}" + "x" * 124, "name": "n" * 128, "arguments": {"k": "v" * 1000}}
        for i in range(MAX_TOOL_CALLS)
    ]

    message = await appended(client, sid, role="assistant", tool_calls=calls)

    assert message["tool_calls"] == calls


async def test_a_deleted_session_leaves_no_tool_call_keys(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = await with_calls(client)
    assert await redis.exists(client.app.state.store.keys.tool_calls("u1", sid))  # type: ignore[attr-defined]

    assert (await client.delete(f"{API}/{sid}", headers=user())).status_code == 204

    assert [key async for key in redis.scan_iter(match=f"*{sid}*")] == []


async def test_the_tool_call_record_expires_with_the_session(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = await with_calls(client)
    keys = client.app.state.store.keys  # type: ignore[attr-defined]

    session_deadline = await redis.pexpiretime(keys.session("u1", sid))
    tools_deadline = await redis.pexpiretime(keys.tool_calls("u1", sid))

    assert session_deadline > 0
    assert tools_deadline == session_deadline


async def test_messages_written_by_earlier_releases_read_the_same(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    keys = client.app.state.store.keys  # type: ignore[attr-defined]
    # What earlier releases stored: fields r, c, t, m only.
    await redis.xadd(
        keys.messages("u1", sid),
        {"r": "user", "c": "héllo wörld", "t": "1763202600000", "m": '{"a":1}'},
        id="0-1",
    )
    await redis.hset(keys.session("u1", sid), mapping={"mc": "1", "nu": "1"})

    one = (await client.get(f"{API}/{sid}/messages/msg_0000000001", headers=user())).json()
    page = (await client.get(f"{API}/{sid}/messages", headers=user())).json()["messages"]
    exported = (await client.get(f"{API}/{sid}/export", headers=user())).json()["messages"]

    assert one == {
        "message_id": "msg_0000000001",
        "role": "user",
        "content": "héllo wörld",
        "timestamp": "2025-11-15T10:30:00.000Z",
        "metadata": {"a": 1},
        "token_count": 4,  # 13 UTF-8 bytes / 4, rounded up
        "token_count_estimated": True,
    }
    assert page == exported == [one]
    after = await appended(client, sid, role="assistant", content="ok")
    assert after["message_id"] == "msg_0000000002"
