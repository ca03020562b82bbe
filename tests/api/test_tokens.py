"""Token counts (issue 13, item 2): the caller's count, the one estimate rule, the stats."""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson
import pytest

from session_service.domain.tokens import MAX_TOKEN_COUNT
from tests.conftest import create_session, user
from tests.helpers import API, appended


def rule(content: str, calls: list[dict[str, Any]] = ()) -> int:  # type: ignore[assignment]
    size = len(content.encode())
    for call in calls:
        args = call.get("arguments", {})
        size += len(call["name"].encode())
        size += len(args.encode()) if isinstance(args, str) else len(orjson.dumps(args))
    return math.ceil(size / 4) + 8 * len(calls)


async def test_a_callers_count_is_kept_as_given(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    message = await appended(client, sid, role="user", content="hello", token_count=1234)
    zero = await appended(client, sid, role="user", content="hello", token_count=0)
    stored = await client.get(f"{API}/{sid}/messages/{message['message_id']}", headers=user())

    assert (message["token_count"], message["token_count_estimated"]) == (1234, False)
    assert (zero["token_count"], zero["token_count_estimated"]) == (0, False)
    assert stored.json() == message


@pytest.mark.parametrize(
    ("content", "calls"),
    [
        ("a", []),
        ("abcd", []),
        ("abcde", []),
        ("é" * 7, []),  # 14 bytes -> 4 tokens, not 7 characters / 4
        ("🙂 pool exhausted", []),
        ("", [{"id": "c1", "name": "get_metrics", "arguments": {"host": "db-1"}}]),
        ("look", [{"id": "c1", "name": "f", "arguments": "{}"}, {"id": "c2", "name": "g"}]),
    ],
)
async def test_without_a_count_the_documented_rule_estimates_it(
    client: httpx.AsyncClient, content: str, calls: list[dict[str, Any]]
) -> None:
    sid = (await create_session(client))["session_id"]
    body: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        body["tool_calls"] = calls

    message = await appended(client, sid, **body)
    stored = await client.get(f"{API}/{sid}/messages/{message['message_id']}", headers=user())

    assert message["token_count"] == rule(content, calls)
    assert message["token_count_estimated"] is True
    assert stored.json()["token_count"] == rule(content, calls)
    assert stored.json()["token_count_estimated"] is True


@pytest.mark.parametrize("bad", [-1, MAX_TOKEN_COUNT + 1, 1.5, "12", True])
async def test_a_count_out_of_bounds_is_422(client: httpx.AsyncClient, bad: Any) -> None:
    sid = (await create_session(client))["session_id"]

    response = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "user", "content": "hi", "token_count": bad},
        headers=user(),
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_largest_count_is_accepted(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    message = await appended(client, sid, role="user", content="hi", token_count=MAX_TOKEN_COUNT)

    assert message["token_count"] == MAX_TOKEN_COUNT


async def test_stats_report_total_tokens_in_total_and_per_role(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await appended(client, sid, role="system", content="be brief", token_count=3)
    await appended(client, sid, role="user", content="why?", token_count=10)
    await appended(client, sid, role="user", content="abcdefgh")  # estimated: 2
    await appended(
        client, sid, role="assistant", tool_calls=[{"id": "c", "name": "f"}], token_count=20
    )
    await appended(client, sid, role="tool", content="x" * 40, tool_call_id="c")  # 10
    # A refused message counts nothing.
    refused = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "tool", "content": "again", "tool_call_id": "c", "token_count": 99},
        headers=user(),
    )
    assert refused.status_code == 409

    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()

    assert stats["total_tokens"] == 45
    assert stats["total_tokens_by_role"] == {"user": 12, "assistant": 20, "system": 3, "tool": 10}
    assert stats["tool_message_count"] == 1
    assert stats["message_count"] == 5


async def test_a_new_session_has_zero_tokens(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()

    assert stats["total_tokens"] == 0
    assert stats["total_tokens_by_role"] == {"user": 0, "assistant": 0, "system": 0, "tool": 0}
