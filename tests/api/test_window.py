"""The prompt window (issue 13, item 3), rule by rule and as a property, on a real server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from session_service.domain.tokens import (
    MAX_WINDOW_TOKENS,
    WINDOW_MAX_BYTES,
    WINDOW_MAX_MESSAGES,
)
from session_service.store.sessions import SessionStore
from tests.api.prompt_window import conversation, ids, summarize, window
from tests.conftest import create_session, user
from tests.helpers import API, appended, fill, mid


async def test_an_empty_session_has_an_empty_window(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    data = await window(client, sid, 100)

    assert data == {
        "summary": None,
        "messages": [],
        "total_tokens": 0,
        "truncated": False,
        "first_message_id": None,
    }


async def test_a_conversation_that_fits_comes_back_whole(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 10, 20, 30)
    paged = (await client.get(f"{API}/{sid}/messages", headers=user())).json()["messages"]

    data = await window(client, sid, 60)

    assert data["messages"] == paged
    assert data["total_tokens"] == 60
    assert data["truncated"] is False
    assert data["first_message_id"] == mid(1)


async def test_the_window_is_the_newest_messages_that_fit(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 10, 20, 30, 5)

    data = await window(client, sid, 54)

    assert ids(data) == [mid(3), mid(4)]
    assert data["total_tokens"] == 35
    assert data["truncated"] is True
    assert data["first_message_id"] == mid(3)


async def test_no_gap_even_when_an_older_message_would_fit(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 1, 100, 10)

    data = await window(client, sid, 15)

    assert ids(data) == [mid(3)]  # msg 1 would fit, but msg 2 does not: no gap
    assert data["truncated"] is True


async def test_a_budget_of_zero_holds_only_free_messages(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 3, 0, 0)

    data = await window(client, sid, 0)

    assert ids(data) == [mid(2), mid(3)]
    assert data["total_tokens"] == 0
    assert data["truncated"] is True


async def test_a_tool_call_group_is_included_whole_or_not_at_all(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 5)
    calls = [{"id": "a", "name": "f"}, {"id": "b", "name": "g"}]
    await appended(client, sid, role="assistant", tool_calls=calls, token_count=50)  # 2
    await appended(client, sid, role="tool", content="ra", tool_call_id="a", token_count=5)  # 3
    await appended(client, sid, role="tool", content="rb", tool_call_id="b", token_count=5)  # 4
    await appended(client, sid, role="assistant", content="done", token_count=5)  # 5

    cut = await window(client, sid, 59)  # the results fit, their call does not
    whole = await window(client, sid, 65)
    everything = await window(client, sid, 70)

    assert ids(cut) == [mid(5)]
    assert cut["total_tokens"] == 5
    assert cut["truncated"] is True
    assert ids(whole) == [mid(2), mid(3), mid(4), mid(5)]
    assert whole["messages"][0]["tool_calls"] == [{**c, "arguments": {}} for c in calls]
    assert whole["messages"][1]["tool_call_id"] == "a"
    assert ids(everything) == [mid(n) for n in range(1, 6)]
    assert everything["truncated"] is False


async def test_a_call_still_waiting_for_results_is_its_own_group(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 5)
    await appended(client, sid, role="assistant", tool_calls=[{"id": "a", "name": "f"}],
                 token_count=7)  # fmt: skip

    data = await window(client, sid, 7)

    assert ids(data) == [mid(2)]


async def test_the_window_starts_after_the_latest_summary(client: httpx.AsyncClient) -> None:
    sid = await conversation(client, 10, 10, 10, 10)
    summary = await summarize(client, sid, mid(2), 4)

    data = await window(client, sid, 1000)

    assert data["summary"] == summary
    assert ids(data) == [mid(3), mid(4)]
    assert data["total_tokens"] == 24
    assert data["truncated"] is False
    assert data["first_message_id"] == mid(3)


async def test_a_summary_alone_over_budget_comes_back_without_messages(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 10, 10)
    summary = await summarize(client, sid, mid(2), 50)

    data = await window(client, sid, 49)

    assert data == {
        "summary": summary,
        "messages": [],
        "total_tokens": 50,
        "truncated": True,
        "first_message_id": None,
    }


async def test_a_summary_covering_everything_leaves_an_empty_window(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 10, 10)
    await summarize(client, sid, mid(2), 5)

    data = await window(client, sid, 5)

    assert data["messages"] == []
    assert data["truncated"] is False
    assert data["total_tokens"] == 5


async def test_results_of_a_call_the_summary_covers_are_left_out(
    client: httpx.AsyncClient,
) -> None:
    sid = await conversation(client, 1)
    await appended(client, sid, role="assistant", tool_calls=[{"id": "a", "name": "f"}],
                 token_count=1)  # fmt: skip
    await summarize(client, sid, mid(2), 1)
    await appended(client, sid, role="tool", content="r", tool_call_id="a", token_count=1)  # 3
    await appended(client, sid, role="user", content="next", token_count=1)  # 4

    data = await window(client, sid, 100)

    # The result's call is in the summary: including the result would split the group.
    assert ids(data) == [mid(4)]
    assert data["truncated"] is True


async def test_messages_of_earlier_releases_count_their_estimate(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client))["session_id"]
    keys = client.app.state.store.keys  # type: ignore[attr-defined]
    await redis.xadd(keys.messages("u1", sid), {"r": "user", "c": "x" * 40, "t": "1", "m": ""},
                     id="0-1")  # fmt: skip
    await redis.hset(keys.session("u1", sid), mapping={"mc": "1", "nu": "1"})
    await appended(client, sid, role="assistant", content="ok", token_count=5)

    fits = await window(client, sid, 15)
    cut = await window(client, sid, 14)

    assert ids(fits) == [mid(1), mid(2)]
    assert fits["messages"][0]["token_count"] == 10
    assert fits["total_tokens"] == 15
    assert ids(cut) == [mid(2)]


async def test_the_window_holds_at_most_its_message_bound(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    sid = (await create_session(client))["session_id"]
    await fill(store, redis, "u1", sid, WINDOW_MAX_MESSAGES + 5)

    data = await window(client, sid, MAX_WINDOW_TOKENS)

    assert len(data["messages"]) == WINDOW_MAX_MESSAGES
    assert data["first_message_id"] == mid(6)
    assert data["messages"][-1]["message_id"] == mid(WINDOW_MAX_MESSAGES + 5)
    assert data["truncated"] is True


async def test_a_window_much_longer_than_the_mean_suggests_is_read_in_many_chunks(
    client: httpx.AsyncClient,
) -> None:
    # The mean is ~400 tokens a message, so the script reads small chunks; the newest
    # 60 messages are free and all of them fit.
    sid = await conversation(client, *([1000] * 40 + [0] * 60))

    data = await window(client, sid, 10)

    assert ids(data) == [mid(n) for n in range(41, 101)]
    assert data["total_tokens"] == 0
    assert data["truncated"] is True


async def test_the_window_holds_at_most_a_mebibyte_of_message_data(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    for _ in range(20):
        await appended(client, sid, role="user", content="x" * 65536, token_count=0)

    data = await window(client, sid, MAX_WINDOW_TOKENS)

    assert ids(data) == [mid(n) for n in range(6, 21)]  # 16 x 64 KiB would pass 1 MiB
    assert sum(len(m["content"]) for m in data["messages"]) <= WINDOW_MAX_BYTES
    assert data["truncated"] is True


@pytest.mark.parametrize(
    "params", [{}, {"max_tokens": -1}, {"max_tokens": MAX_WINDOW_TOKENS + 1}, {"max_tokens": "x"}]
)
async def test_a_missing_or_out_of_bounds_budget_is_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    sid = (await create_session(client))["session_id"]

    response = await client.get(f"{API}/{sid}/window", params=params, headers=user())

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_windows_read_while_tool_groups_are_appended_never_split_a_group(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    writing = True

    async def writer() -> None:
        nonlocal writing
        for g in range(15):
            calls = [{"id": f"g{g}-{i}", "name": "f"} for i in range(2)]
            await appended(client, sid, role="assistant", tool_calls=calls, token_count=3)
            for call in calls:
                await appended(client, sid, role="tool", content="r", tool_call_id=call["id"],
                             token_count=2)  # fmt: skip
            await appended(client, sid, role="user", content="next", token_count=1)
        writing = False

    async def reader() -> list[dict[str, Any]]:
        seen = []
        while writing:
            seen.append(await window(client, sid, 11))
        return seen

    _, windows = await asyncio.gather(writer(), reader())

    assert windows
    for data in [*windows, await window(client, sid, 11)]:
        calls = {c["id"] for m in data["messages"] for c in m.get("tool_calls", ())}
        results = {m["tool_call_id"] for m in data["messages"] if m["role"] == "tool"}
        assert results <= calls, data
        assert data["total_tokens"] == sum(m["token_count"] for m in data["messages"])
        assert data["total_tokens"] <= 11


# ---- the property: longest fitting suffix, whole groups, nothing summarized ---------------


@dataclass
class Model:
    """What the test appended, to compute the expected window by brute force."""

    tokens: list[int] = field(default_factory=list)  # index = seq - 1
    needs: list[int | None] = field(default_factory=list)  # a result's call seq
    pending: dict[str, int] = field(default_factory=dict)

    def expected(self, floor: int, summary: int, budget: int) -> tuple[list[int], bool, int]:
        n = len(self.tokens)
        if summary > budget:
            return [], True, summary
        for start in range(floor + 1, n + 2):  # the longest suffix first
            seqs = list(range(start, n + 1))
            used = summary + sum(self.tokens[s - 1] for s in seqs)
            whole = all((self.needs[s - 1] or start) >= start for s in seqs)
            if used <= budget and whole:
                return seqs, start > floor + 1, used
        raise AssertionError("the empty suffix always fits")


STEP = st.tuples(
    st.sampled_from(["user", "assistant", "system", "call", "result", "result"]),
    st.integers(min_value=1, max_value=3),  # calls made, or which pending call answers
    st.none() | st.integers(min_value=0, max_value=40),  # token_count (None = estimated)
    st.integers(min_value=1, max_value=60),  # content length
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(STEP, max_size=24),
    summary_at=st.none() | st.floats(min_value=0, max_value=1),
    summary_tokens=st.integers(min_value=0, max_value=30),
    budgets=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=4),
)
async def test_the_window_is_the_longest_fitting_suffix_of_whole_groups_after_the_summary(
    client: httpx.AsyncClient,
    steps: list[tuple[str, int, int | None, int]],
    summary_at: float | None,
    summary_tokens: int,
    budgets: list[int],
) -> None:
    sid = (await create_session(client))["session_id"]
    model = Model()
    for kind, k, tokens, length in steps:
        body: dict[str, Any] = {"content": "é" * length}
        if tokens is not None:
            body["token_count"] = tokens
        need = None
        if kind == "call":
            names = [f"c{len(model.tokens)}-{i}" for i in range(k)]
            body |= {"role": "assistant", "tool_calls": [{"id": c, "name": "f"} for c in names]}
        elif kind == "result":
            if not model.pending:
                continue
            call = sorted(model.pending)[k % len(model.pending)]
            need = model.pending.pop(call)
            body |= {"role": "tool", "tool_call_id": call}
        else:
            body["role"] = kind
        message = await appended(client, sid, **body)
        model.tokens.append(message["token_count"])
        model.needs.append(need)
        if kind == "call":
            model.pending |= {c: len(model.tokens) for c in names}
    floor = summary = 0
    if summary_at is not None and model.tokens:
        floor = 1 + int(summary_at * (len(model.tokens) - 1))
        await summarize(client, sid, mid(floor), summary_tokens)
        summary = summary_tokens

    for budget in budgets:
        data = await window(client, sid, budget)

        seqs, truncated, used = model.expected(floor, summary, budget)
        assert ids(data) == [mid(s) for s in seqs]
        assert data["truncated"] is truncated
        assert data["total_tokens"] == used
        assert data["first_message_id"] == (mid(seqs[0]) if seqs else None)
        assert (data["summary"] is None) == (summary_at is None or not model.tokens)
