"""RFC 9110 §13.1-13.2 beyond If-Match on writes: If-None-Match on writes, If-Match on
reads, and HEAD wherever GET is answered. Runs on both dispatch paths (conftest)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from session_service.app import routes_in_order
from tests.conftest import create_session, user
from tests.helpers import API, SESSION_WRITES


@pytest.fixture(params=[True, False], ids=["fast", "router"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Both dispatch paths: the issue was seen on each (tests/api/conftest.py runs one)."""
    value: bool = request.param
    return value


async def etag_of(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path, headers=user())
    assert response.status_code == 200, response.text[:200]
    return response.headers["etag"]


def refused(response: httpx.Response, current: str) -> None:
    assert response.status_code == 412, response.text[:300]
    assert response.json()["code"] == "precondition_failed"
    assert response.headers["etag"] == current


@pytest.mark.parametrize(("method", "suffix", "body", "ok"), SESSION_WRITES)
async def test_a_session_write_with_if_none_match_on_the_current_etag_or_star_is_412(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None, ok: int
) -> None:
    sid = (await create_session(client, title="old"))["session_id"]
    await client.patch(f"{API}/{sid}", json={"context": {"k": 1}}, headers=user())
    stale = await etag_of(client, f"{API}/{sid}")
    await client.post(f"{API}/{sid}/heartbeat", headers=user())
    current = await etag_of(client, f"{API}/{sid}")
    path = f"{API}/{sid}{suffix}"

    # If-None-Match compares weakly: W/"x" matches "x".
    for value in (current, "*", f"W/{current}", f'"other", {current}'):
        answer = await client.request(
            method, path, json=body, headers=user(**{"If-None-Match": value})
        )
        refused(answer, current)
    assert await etag_of(client, f"{API}/{sid}") == current, "a refused write wrote nothing"

    done = await client.request(method, path, json=body, headers=user(**{"If-None-Match": stale}))
    assert done.status_code == ok, done.text[:300]


async def test_if_match_and_if_none_match_together_must_both_hold(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    current = await etag_of(client, f"{API}/{sid}")
    path = f"{API}/{sid}"

    both_fail = await client.patch(
        path, json={"title": "x"}, headers=user(**{"If-Match": current, "If-None-Match": current})
    )
    refused(both_fail, current)
    done = await client.patch(
        path, json={"title": "x"}, headers=user(**{"If-Match": current, "If-None-Match": '"old"'})
    )
    assert done.status_code == 200, done.text[:300]


async def _conversation(client: httpx.AsyncClient) -> str:
    sid: str = (await create_session(client))["session_id"]
    for text in ("one", "two"):
        answer = await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": text}, headers=user()
        )
        assert answer.status_code == 201
    return sid


MESSAGE_WRITES = [
    ("/messages", {"role": "user", "content": "three"}, 201),
    ("/summaries", {"content": "s", "covers_through": "msg_0000000001"}, 201),
    ("/rewind", {"to_message_id": "msg_0000000001"}, 200),
]


@pytest.mark.parametrize(("suffix", "body", "ok"), MESSAGE_WRITES)
async def test_a_messages_write_with_if_none_match_on_the_messages_etag_is_412(
    client: httpx.AsyncClient, suffix: str, body: dict[str, Any], ok: int
) -> None:
    sid = await _conversation(client)
    current = await etag_of(client, f"{API}/{sid}/messages")
    path = f"{API}/{sid}{suffix}"

    for value in (current, "*"):
        answer = await client.post(path, json=body, headers=user(**{"If-None-Match": value}))
        refused(answer, current)
    assert await etag_of(client, f"{API}/{sid}/messages") == current

    done = await client.post(path, json=body, headers=user(**{"If-None-Match": '"old"'}))
    assert done.status_code == ok, done.text[:300]


async def test_a_precondition_is_checked_before_a_body_that_cannot_be_parsed(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    current = await etag_of(client, f"{API}/{sid}")

    answer = await client.patch(
        f"{API}/{sid}",
        content=b"{not json",
        headers=user(**{"If-None-Match": "*", "Content-Type": "application/json"}),
    )

    refused(answer, current)


TAGGED_READS = ["", "/messages"]


@pytest.mark.parametrize("suffix", TAGGED_READS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_read_with_a_non_matching_if_match_is_412(
    client: httpx.AsyncClient, suffix: str, method: str
) -> None:
    sid = await _conversation(client)
    path = f"{API}/{sid}{suffix}"
    current = await etag_of(client, path)

    for value in ('"stale"', f"W/{current}", "not a tag"):
        answer = await client.request(method, path, headers=user(**{"If-Match": value}))
        assert answer.status_code == 412, (value, answer.status_code)
        assert answer.headers["etag"] == current
        if method == "GET":
            assert answer.json()["code"] == "precondition_failed"
    for value in (current, "*", f'"x", {current}'):
        answer = await client.request(method, path, headers=user(**{"If-Match": value}))
        assert answer.status_code == 200, (value, answer.status_code)
    # If-Match is evaluated before If-None-Match (RFC 9110 §13.2.2).
    both = await client.request(
        method, path, headers=user(**{"If-Match": '"stale"', "If-None-Match": current})
    )
    assert both.status_code == 412


async def test_a_read_of_a_missing_session_with_if_match_is_404(client: httpx.AsyncClient) -> None:
    missing = f"{API}/sess_{'0' * 32}"

    answer = await client.get(missing, headers=user(**{"If-Match": '"x"'}))

    assert answer.status_code == 404


def _get_paths(app: Any, sid: str) -> list[str]:
    """Every GET route of the app, with its path parameters filled in."""
    fill = {"session_id": sid, "message_id": "msg_0000000001", "case_id": "case-1"}
    paths = []
    for route in routes_in_order(app):
        if isinstance(route, APIRoute | Route) and "GET" in (route.methods or ()):
            path = route.path
            for name, value in fill.items():
                path = path.replace("{" + name + "}", value)
            assert "{" not in path, f"fill in the parameters of {route.path}"
            paths.append(path)
    return paths


async def test_head_is_answered_wherever_get_is(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    await client.post(f"{API}/{sid}/cases", json={"case_id": "case-1"}, headers=user())
    paths = _get_paths(client.app, sid)  # type: ignore[attr-defined]
    assert len(paths) >= 15, paths

    for path in paths:
        get = await client.get(path, headers=user())
        head = await client.head(path, headers=user())
        assert head.status_code == get.status_code, (path, head.status_code, get.status_code)
        assert head.content == b"", path
        assert head.headers.get("etag") == get.headers.get("etag"), path
        if path == f"{API}/{sid}":
            continue  # its own light HEAD route: existence and ETag, nothing read beyond
        for name in ("content-type", "content-disposition", "cache-control"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)
        if path not in ("/metrics", "/ready"):  # counters and a latency move between the two
            assert head.headers.get("content-length") == get.headers.get("content-length"), path


async def test_head_honours_if_none_match_and_unknown_sessions(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    current = await etag_of(client, f"{API}/{sid}/messages")

    unchanged = await client.head(
        f"{API}/{sid}/messages", headers=user(**{"If-None-Match": current})
    )
    missing = await client.head(f"{API}/sess_{'0' * 32}/messages", headers=user())

    assert unchanged.status_code == 304
    assert missing.status_code == 404 and missing.content == b""


async def test_a_method_not_allowed_names_head_beside_get(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)

    answer = await client.put(f"{API}/{sid}/messages", headers=user())

    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, POST"
