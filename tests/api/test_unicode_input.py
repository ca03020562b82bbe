"""Text that is not Unicode (a lone surrogate) is a 422 wherever JSON text is accepted.

JSON may spell a lone surrogate (`"\\ud800"`); Python's `json.loads` reads it into a
`str` that no UTF-8 encoder takes, so it must be refused at validation, with the
same answer on both dispatch paths, and nothing stored.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import create_session, user
from tests.helpers import API


@pytest.fixture(params=[True, False], ids=["fast", "router"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Both dispatch paths: the issue was seen on each (tests/api/conftest.py runs one)."""
    value: bool = request.param
    return value


LONE = "\ud800"


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    # json.dumps escapes the surrogate as \ud800 (ensure_ascii), as a client would send it.
    content = json.dumps(body).encode("ascii")
    headers = {**user(), "Content-Type": "application/json"}
    return await client.request(method, path, content=content, headers=headers)


def assert_refused(response: httpx.Response, where: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert "Unicode" in body["detail"] and where in body["detail"], body["detail"]
    assert "64 bits" not in body["detail"]
    assert body["errors"][0]["type"] == "invalid_unicode"


async def conversation(client: httpx.AsyncClient) -> str:
    sid: str = (await create_session(client))["session_id"]
    first = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "hi"}, headers=user()
    )
    assert first.status_code == 201, first.text
    return sid


MESSAGE_BODIES = [
    ({"role": "user", "content": f"a{LONE}b"}, "content"),
    ({"role": "user", "content": "ok", "metadata": {"k": LONE}}, "metadata.k"),
    ({"role": "user", "content": "ok", "metadata": {f"k{LONE}": 1}}, "metadata"),
    ({"role": "user", "content": "ok", "metadata": {"k": [{"deep": [LONE]}]}}, "metadata.k.0"),
    (
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f", "arguments": {"q": LONE}}]},
        "tool_calls.0.arguments.q",
    ),
    (
        {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f", "arguments": LONE}]},
        "tool_calls.0.arguments",
    ),
    ({"role": "user", "content": "\udc00"}, "content"),  # a lone low surrogate too
]


@pytest.mark.parametrize(("body", "where"), MESSAGE_BODIES)
async def test_a_message_with_a_lone_surrogate_is_422_and_not_stored(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    sid = await conversation(client)

    response = await send(client, "POST", f"{API}/{sid}/messages", body)

    assert_refused(response, where)
    page = await client.get(f"{API}/{sid}/messages", headers=user())
    assert page.json()["total"] == 1


async def test_a_summary_with_a_lone_surrogate_is_422(client: httpx.AsyncClient) -> None:
    sid = await conversation(client)
    path = f"{API}/{sid}/summaries"

    content = await send(
        client, "POST", path, {"content": LONE, "covers_through": "msg_0000000001"}
    )
    metadata = await send(
        client,
        "POST",
        path,
        {"content": "s", "covers_through": "msg_0000000001", "metadata": {"m": LONE}},
    )

    assert_refused(content, "content")
    assert_refused(metadata, "metadata.m")
    assert (await client.get(path, headers=user())).json()["summaries"] == []


SESSION_BODIES = [
    ({"title": LONE}, "title"),
    ({"description": f"x{LONE}"}, "description"),
    ({"metadata": {"a": LONE}}, "metadata.a"),
    ({"client_id": LONE}, "client_id"),
]


@pytest.mark.parametrize(("body", "where"), SESSION_BODIES)
async def test_a_create_with_a_lone_surrogate_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    response = await send(client, "POST", API, body)

    assert_refused(response, where)
    listed = await client.get(API, headers=user())
    assert listed.json()["total"] == 0


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize(
    ("body", "where"), [*SESSION_BODIES[:3], ({"context": {"c": {"d": LONE}}}, "context.c.d")]
)
async def test_an_update_with_a_lone_surrogate_is_422_and_changes_nothing(
    client: httpx.AsyncClient, method: str, body: dict[str, Any], where: str
) -> None:
    created = await create_session(client, title="before")
    path = f"{API}/{created['session_id']}"
    before = await client.get(path, headers=user())

    response = await send(client, method, path, body)

    assert_refused(response, where)
    after = await client.get(path, headers=user())
    assert after.json()["title"] == "before"
    assert after.headers["ETag"] == before.headers["ETag"]


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/search", {"query": LONE}, "query"),
        ("/search", {"metadata": {"k": LONE}}, "metadata.k"),
        ("/{sid}/fork", {"title": LONE}, "title"),
        ("/{sid}/cases", {"case_id": LONE}, "case_id"),
    ],
)
async def test_other_bodies_with_a_lone_surrogate_are_422(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], where: str
) -> None:
    sid = await conversation(client)

    response = await send(client, "POST", API + path.format(sid=sid), body)

    assert_refused(response, where)


async def test_an_unknown_session_is_still_404_before_the_422(client: httpx.AsyncClient) -> None:
    missing = "sess_" + "0" * 32

    response = await send(
        client, "POST", f"{API}/{missing}/messages", {"role": "user", "content": LONE}
    )

    assert response.status_code == 404, response.text


async def test_a_too_large_integer_still_names_the_64_bit_bound(client: httpx.AsyncClient) -> None:
    sid = await conversation(client)

    response = await send(
        client,
        "POST",
        f"{API}/{sid}/messages",
        {"role": "user", "content": "x", "metadata": {"n": 2**64}},
    )

    assert response.status_code == 422, response.text
    assert "64 bits" in response.json()["detail"]
