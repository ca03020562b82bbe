"""Cursor paging of a conversation (issue 3, item 4), rule by rule.

- no `order`, no cursor: the newest `limit` messages, oldest first; `has_more`
  says older ones exist and `next_cursor` (the oldest id on the page) continues
  backward as `before` with `order=desc`;
- `order=asc`: forward from the oldest, or from just after `after`;
- `order=desc`: backward from the newest, or from just before `before`;
- `next_cursor` is the last id of an asc/desc page; cursors are exclusive.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import create_session, user
from tests.helpers import mid


async def new_conversation(client: httpx.AsyncClient, count: int) -> str:
    sid: str = (await create_session(client))["session_id"]
    await add_messages(client, sid, count)
    return sid


async def add_messages(client: httpx.AsyncClient, sid: str, count: int) -> None:
    for _ in range(count):
        response = await client.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"role": "user", "content": "m"},
            headers=user(),
        )
        assert response.status_code == 201, response.text


async def page(client: httpx.AsyncClient, sid: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/sessions/{sid}/messages", params=params, headers=user())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert set(data) == {"session_id", "messages", "total", "returned", "has_more", "next_cursor"}
    assert data["returned"] == len(data["messages"])
    return data


def ids(data: dict[str, Any]) -> list[str]:
    return [m["message_id"] for m in data["messages"]]


# ---- default: the newest page -------------------------------------------------------


async def test_default_page_is_the_newest_messages_oldest_first(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 7)

    data = await page(client, sid, limit=3)

    assert ids(data) == [mid(5), mid(6), mid(7)]
    assert data["total"] == 7
    assert data["has_more"] is True
    assert data["next_cursor"] == mid(5)


async def test_default_page_continues_backward_with_order_desc(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 7)
    newest = await page(client, sid, limit=3)

    older = await page(client, sid, order="desc", before=newest["next_cursor"], limit=3)

    assert ids(older) == [mid(4), mid(3), mid(2)]
    assert older["has_more"] is True


async def test_default_page_holding_the_whole_conversation_has_no_more(
    client: httpx.AsyncClient,
) -> None:
    sid = await new_conversation(client, 3)

    data = await page(client, sid)

    assert ids(data) == [mid(1), mid(2), mid(3)]
    assert data["has_more"] is False
    assert data["next_cursor"] is None


async def test_default_limit_is_100(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 101)

    data = await page(client, sid)

    assert ids(data) == [mid(n) for n in range(2, 102)]
    assert data["total"] == 101
    assert data["has_more"] is True


@pytest.mark.parametrize("params", [{}, {"order": "asc"}, {"order": "desc"}])
async def test_an_empty_conversation_pages_to_nothing(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    sid = await new_conversation(client, 0)

    data = await page(client, sid, **params)

    assert data["messages"] == []
    assert data["total"] == 0
    assert data["has_more"] is False
    assert data["next_cursor"] is None


# ---- asc ----------------------------------------------------------------------------


async def test_asc_walks_forward_from_the_oldest_message(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 7)

    first = await page(client, sid, order="asc", limit=3)
    second = await page(client, sid, order="asc", after=first["next_cursor"], limit=3)
    last = await page(client, sid, order="asc", after=second["next_cursor"], limit=3)

    assert (ids(first), first["has_more"], first["next_cursor"]) == (
        [mid(1), mid(2), mid(3)],
        True,
        mid(3),
    )
    assert (ids(second), second["has_more"], second["next_cursor"]) == (
        [mid(4), mid(5), mid(6)],
        True,
        mid(6),
    )
    assert (ids(last), last["has_more"], last["next_cursor"]) == ([mid(7)], False, mid(7))
    assert {first["total"], second["total"], last["total"]} == {7}


async def test_a_page_that_ends_exactly_at_the_newest_has_no_more(
    client: httpx.AsyncClient,
) -> None:
    sid = await new_conversation(client, 6)

    data = await page(client, sid, order="asc", after=mid(3), limit=3)

    assert ids(data) == [mid(4), mid(5), mid(6)]
    assert data["has_more"] is False


async def test_after_alone_walks_forward(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 5)

    data = await page(client, sid, after=mid(2), limit=2)

    assert ids(data) == [mid(3), mid(4)]
    assert data["has_more"] is True


async def test_a_caught_up_asc_walk_continues_from_its_cursor_after_new_messages(
    client: httpx.AsyncClient,
) -> None:
    sid = await new_conversation(client, 2)
    caught_up = await page(client, sid, order="asc")
    assert caught_up["has_more"] is False

    await add_messages(client, sid, 2)
    data = await page(client, sid, order="asc", after=caught_up["next_cursor"])

    assert ids(data) == [mid(3), mid(4)]


# ---- desc ---------------------------------------------------------------------------


async def test_desc_walks_backward_from_the_newest_message(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 5)

    first = await page(client, sid, order="desc", limit=2)
    second = await page(client, sid, order="desc", before=first["next_cursor"], limit=2)
    last = await page(client, sid, order="desc", before=second["next_cursor"], limit=2)

    assert (ids(first), first["has_more"], first["next_cursor"]) == ([mid(5), mid(4)], True, mid(4))
    assert (ids(second), second["has_more"]) == ([mid(3), mid(2)], True)
    assert (ids(last), last["has_more"], last["next_cursor"]) == ([mid(1)], False, mid(1))


async def test_before_alone_walks_backward(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 5)

    data = await page(client, sid, before=mid(4), limit=2)

    assert ids(data) == [mid(3), mid(2)]
    assert data["has_more"] is True


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"order": "asc", "after": mid(0)}, [1, 2, 3]),
        ({"order": "asc", "after": mid(3)}, []),
        ({"order": "asc", "after": "msg_9999999999"}, []),
        ({"order": "desc", "before": mid(1)}, []),
        ({"order": "desc", "before": mid(0)}, []),
        ({"order": "desc", "before": "msg_9999999999"}, [3, 2, 1]),
    ],
)
async def test_cursors_are_exclusive_at_both_ends(
    client: httpx.AsyncClient, params: dict[str, str], expected: list[int]
) -> None:
    sid = await new_conversation(client, 3)

    data = await page(client, sid, **params)

    assert ids(data) == [mid(n) for n in expected]
    assert data["has_more"] is False


# ---- invalid requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"order": "sideways"},
        {"after": mid(1), "before": mid(3)},
        {"order": "desc", "after": mid(1)},
        {"order": "asc", "before": mid(3)},
        {"after": "msg_1"},
        {"before": "msg_00000000001"},
        {"after": "sess_0000000001"},
        {"order": "asc", "after": ""},
    ],
)
async def test_invalid_paging_requests_are_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    sid = await new_conversation(client, 3)

    response = await client.get(f"/api/v1/sessions/{sid}/messages", params=params, headers=user())

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_limit_500_is_allowed(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, 2)

    assert ids(await page(client, sid, limit=500)) == [mid(1), mid(2)]


# ---- property: walks visit every message exactly once ------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.integers(min_value=0, max_value=30),
    limit=st.integers(min_value=1, max_value=12) | st.integers(min_value=1, max_value=500),
    order=st.sampled_from(["asc", "desc", "newest-then-desc"]),
    appends=st.lists(st.integers(min_value=0, max_value=4), max_size=12),
)
async def test_walking_the_pages_visits_each_message_exactly_once(
    client: httpx.AsyncClient, initial: int, limit: int, order: str, appends: list[int]
) -> None:
    sid = await new_conversation(client, initial)
    seen: list[str] = []
    if order == "newest-then-desc":
        data = await page(client, sid, limit=limit)
        seen += reversed(ids(data))
        order, cursor_name = "desc", "before"
    else:
        data = await page(client, sid, order=order, limit=limit)
        seen += ids(data)
        cursor_name = "after" if order == "asc" else "before"
    steps = iter(appends)
    while data["has_more"]:
        await add_messages(client, sid, next(steps, 0))  # new messages between pages
        cursor = data["next_cursor"]
        assert cursor == seen[-1]
        data = await page(client, sid, order=order, limit=limit, **{cursor_name: cursor})
        seen += ids(data)
        assert data["returned"] <= limit

    final_total = data["total"]
    assert len(seen) == len(set(seen)), "a message was visited twice"
    if order == "asc":  # the forward walk also reaches what was appended on the way
        assert seen == [mid(n) for n in range(1, final_total + 1)]
    else:  # the backward walk covers exactly what existed when it started
        assert seen == [mid(n) for n in range(initial, 0, -1)]
