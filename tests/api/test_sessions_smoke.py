"""The core session endpoints, end to end on a real server."""

from __future__ import annotations

import httpx

from tests.conftest import create_session, user


async def test_create_then_get_returns_the_same_session(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="DB timeouts", metadata={"env": "prod"})
    assert created["status"] == "active"
    assert created["session_resumed"] is False
    assert created["session_id"].startswith("sess_")

    got = await client.get(f"/api/v1/sessions/{created['session_id']}", headers=user())
    assert got.status_code == 200
    body = got.json()
    assert body["title"] == "DB timeouts"
    assert body["metadata"] == {"env": "prod"}
    assert body["user_id"] == "u1"


async def test_another_user_gets_the_same_404_as_a_missing_session(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, "alice")
    theirs = await client.get(f"/api/v1/sessions/{created['session_id']}", headers=user("bob"))
    missing = await client.get(
        "/api/v1/sessions/sess_00000000000000000000000000000000", headers=user("bob")
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {
        "detail": "Session not found",
        "code": "session_not_found",
    }
