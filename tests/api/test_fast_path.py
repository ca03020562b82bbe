"""The lean dispatcher for hot routes answers exactly like the FastAPI routes it shadows.

The fast path only takes requests without a query string, so the same request
with a harmless query string (`?via=fastapi`) goes through FastAPI's router:
both must give the same status, the same body shape and the same error codes.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from session_service.api.routes import messages, sessions
from tests.conftest import create_session, user

VOLATILE = {
    "session_id",
    "message_id",
    "created_at",
    "updated_at",
    "last_activity_at",
    "expires_at",
    "timestamp",
}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("*" if k in VOLATILE else _stable(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def _both(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    fast = await client.request(method, path, **kwargs)
    slow = await client.request(method, f"{path}?via=fastapi", **kwargs)
    return fast, slow


def _same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert _stable(fast.json()) == _stable(slow.json())


async def test_fast_routes_are_the_declared_routes(client: httpx.AsyncClient) -> None:
    """Metrics and logs see the FastAPI route template for fast-path requests too."""
    routes = [*sessions.router.routes, *messages.router.routes]
    declared = {(m, r.path) for r in routes for m in getattr(r, "methods", None) or ()}
    for route in [
        ("POST", "/api/v1/sessions"),
        ("GET", "/api/v1/sessions/{session_id}"),
        ("POST", "/api/v1/sessions/{session_id}/messages"),
        ("POST", "/api/v1/sessions/{session_id}/heartbeat"),
    ]:
        assert route in declared


@pytest.mark.parametrize(
    "body",
    [
        {"title": "t", "metadata": {"a": [1, {"b": None}]}, "session_type": "incident"},
        {"title": "x" * 201},
        {"unknown": 1},
        {"timeout_minutes": 0},
        {"metadata": {"k" * 129: 1}},
    ],
)
async def test_create_matches(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _same(*await _both(client, "POST", "/api/v1/sessions", json=body, headers=user()))


async def test_create_with_malformed_json_matches(client: httpx.AsyncClient) -> None:
    headers = {**user(), "content-type": "application/json"}
    fast, slow = await _both(client, "POST", "/api/v1/sessions", content=b"{nope", headers=headers)
    assert fast.status_code == slow.status_code == 422
    assert fast.json()["code"] == slow.json()["code"] == "validation_error"


async def test_create_with_a_bad_idempotency_key_matches(client: httpx.AsyncClient) -> None:
    headers = {**user(), "Idempotency-Key": "x" * 256}
    _same(*await _both(client, "POST", "/api/v1/sessions", json={}, headers=headers))


async def test_get_matches_for_found_missing_malformed_and_foreign(
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client, title="mine")
    sid = session["session_id"]
    for path, who in [
        (f"/api/v1/sessions/{sid}", "u1"),
        (f"/api/v1/sessions/{sid}", "someone-else"),
        ("/api/v1/sessions/sess_00000000000000000000000000000000", "u1"),
        ("/api/v1/sessions/not-an-id", "u1"),
    ]:
        _same(*await _both(client, "GET", path, headers=user(who)))


@pytest.mark.parametrize(
    "body",
    [
        {"role": "user", "content": "hello"},
        {"role": "robot", "content": "hello"},
        {"role": "user", "content": ""},
        {"role": "user"},
        {"role": "assistant", "content": "x", "metadata": {"tokens": 3}},
    ],
)
async def test_append_matches(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    sid = (await create_session(client))["session_id"]
    fast, slow = await _both(
        client, "POST", f"/api/v1/sessions/{sid}/messages", json=body, headers=user()
    )
    assert fast.status_code == slow.status_code
    if fast.status_code == 201:
        # Both were stored: the second one is message 2.
        assert fast.json()["message"]["message_id"] == "msg_0000000001"
        assert slow.json()["message"]["message_id"] == "msg_0000000002"
        assert _stable(fast.json()["message"]) == _stable(slow.json()["message"])
    else:
        _same(fast, slow)


async def test_append_to_unknown_session_with_bad_body_is_404_on_both(
    client: httpx.AsyncClient,
) -> None:
    path = "/api/v1/sessions/sess_00000000000000000000000000000000/messages"
    fast, slow = await _both(client, "POST", path, json={"role": "robot"}, headers=user())
    _same(fast, slow)
    assert fast.status_code == 404


async def test_append_too_large_and_archived_match(make_client: Any) -> None:
    async with make_client(max_message_bytes=8) as client:
        sid = (await create_session(client))["session_id"]
        body = {"role": "user", "content": "é" * 5}  # 10 UTF-8 bytes
        path = f"/api/v1/sessions/{sid}/messages"
        fast, slow = await _both(client, "POST", path, json=body, headers=user())
        _same(fast, slow)
        assert fast.json()["code"] == "message_too_large"
        await client.post(f"/api/v1/sessions/{sid}/archive", headers=user())
        body = {"role": "user", "content": "ok"}
        fast, slow = await _both(client, "POST", path, json=body, headers=user())
        _same(fast, slow)
        assert fast.json()["code"] == "session_archived"


async def test_heartbeat_matches(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    _same(*await _both(client, "POST", f"/api/v1/sessions/{sid}/heartbeat", headers=user()))
    _same(
        *await _both(client, "POST", "/api/v1/sessions/sess_nothere/heartbeat", headers=user("u2"))
    )


async def test_a_bad_idempotency_key_on_someone_elses_session_is_404_on_both(
    client: httpx.AsyncClient,
) -> None:
    """Session before request: the 404 wins over the 422 of a malformed header."""
    sid = (await create_session(client, "owner"))["session_id"]
    headers = {**user("intruder"), "Idempotency-Key": "\x7f" * 3}
    body = {"role": "user", "content": "hi"}
    fast, slow = await _both(
        client, "POST", f"/api/v1/sessions/{sid}/messages", json=body, headers=headers
    )
    _same(fast, slow)
    assert fast.status_code == 404
    own = await client.post(
        f"/api/v1/sessions/{sid}/messages",
        json=body,
        headers={**user("owner"), "Idempotency-Key": "\x7f"},
    )
    assert own.status_code == 422
    assert own.json()["code"] == "validation_error"


async def test_create_without_a_body_uses_the_defaults_on_both(client: httpx.AsyncClient) -> None:
    """Every create field is optional, so the body is too."""
    fast, slow = await _both(client, "POST", "/api/v1/sessions", headers=user())
    _same(fast, slow)
    assert fast.status_code == 201
    assert fast.json()["session_type"] == "troubleshooting"
    assert fast.json()["title"] is None
    headers = {**user(), "content-type": "application/json"}
    fast, slow = await _both(client, "POST", "/api/v1/sessions", content=b"null", headers=headers)
    _same(fast, slow)
    assert fast.status_code == 201
