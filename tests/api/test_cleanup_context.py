"""Expired-entry cleanup, working context and recovery info (issue 4, items 7-9)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, epoch, store_of, wait_past

KEYS = Keys("fms")


async def _expired_sessions(client: httpx.AsyncClient, owners: dict[str, int]) -> None:
    """Create short-lived sessions (DEFAULT_SESSION_TTL=1) and wait until they expire."""
    last = ""
    for owner, count in owners.items():
        for _ in range(count):
            last = (await create_session(client, owner))["expires_at"]
    await wait_past(store_of(client).client, last)


async def _cleanup(client: httpx.AsyncClient, user_id: str, roles: str | None = None) -> Any:
    headers = user(user_id) if roles is None else user(user_id, **{"X-User-Roles": roles})
    response = await client.post(f"{API}/cleanup", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# ---- POST /sessions/cleanup ---------------------------------------------------------------


async def test_cleanup_removes_the_callers_expired_index_entries_only(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=1) as client:
        live = await client.post(API, json={"timeout_minutes": 5}, headers=user("u1"))
        assert live.status_code == 201
        await _expired_sessions(client, {"u1": 2, "u2": 1})
        report = await _cleanup(client, "u1")
    assert report["cleaned_sessions"] == 2
    assert report["scanned"] == 3
    assert abs(epoch(report["timestamp"]) - time.time()) < 60
    assert report["timestamp"].endswith("Z")
    assert await redis.zcard(KEYS.expiry("u1")) == 1
    assert await redis.zcard(KEYS.expiry("u2")) == 1


async def test_admin_cleanup_removes_every_users_expired_entries(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=1) as client:
        await _expired_sessions(client, {"u1": 1, "u2": 2, "u3": 1})
        report = await _cleanup(client, "ops", '["admin"]')
    assert report["cleaned_sessions"] == 4
    assert report["scanned"] == 4
    for owner in ("u1", "u2", "u3"):
        assert await redis.zcard(KEYS.expiry(owner)) == 0


@pytest.mark.parametrize(
    ("roles", "scanned"),
    [('["admin"]', 3), ('["support", "admin"]', 3), ("admin", 3), ("support, admin", 3),
     ('["support"]', 1), ("support,viewer", 1), ("administrator", 1), ("", 1), (None, 1)],
)  # fmt: skip
async def test_cleanup_scope_follows_the_admin_role_in_either_roles_format(
    client: httpx.AsyncClient, roles: str | None, scanned: int
) -> None:
    await create_session(client, "u1")
    await create_session(client, "u2")
    await create_session(client, "u2")
    report = await _cleanup(client, "u1", roles)
    assert report["scanned"] == scanned
    assert report["cleaned_sessions"] == 0


async def test_cleanup_with_nothing_expired_reports_zero(client: httpx.AsyncClient) -> None:
    await create_session(client)
    report = await _cleanup(client, "u1")
    assert report["cleaned_sessions"] == 0
    assert report["scanned"] == 1
    assert (await client.get(API, headers=user())).json()["total"] == 1


@pytest.mark.parametrize("roles", ["[admin]", '["admin", 1]', "admin;drop", '{"admin": true}'])
async def test_a_malformed_roles_header_is_400(client: httpx.AsyncClient, roles: str) -> None:
    response = await client.post(f"{API}/cleanup", headers=user("u1", **{"X-User-Roles": roles}))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_roles_header"


async def test_the_background_task_removes_expired_entries_without_any_request(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=1, cleanup_interval_seconds=1) as client:
        await create_session(client, "u1")
        await create_session(client, "u2")
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not await redis.exists(KEYS.expiry("u1"), KEYS.expiry("u2")):
                break
    assert await redis.zcard(KEYS.expiry("u1")) == 0
    assert await redis.zcard(KEYS.expiry("u2")) == 0


# ---- working context ----------------------------------------------------------------------


async def test_context_is_returned_updated_and_merged_like_metadata(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    first = await client.patch(
        f"{API}/{sid}", json={"context": {"hypothesis": "pool", "step": 1}}, headers=user()
    )
    assert first.json()["context"] == {"hypothesis": "pool", "step": 1}
    second = await client.put(
        f"{API}/{sid}", json={"context": {"step": None, "seen": [1, 2]}}, headers=user()
    )
    assert second.json()["context"] == {"hypothesis": "pool", "seen": [1, 2]}
    got = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert got["context"] == {"hypothesis": "pool", "seen": [1, 2]}


async def test_context_cleanup_clears_the_context_and_keeps_messages_and_metadata(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client, title="t", metadata={"env": "prod"}))["session_id"]
    await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "hi"},
                      headers=user())  # fmt: skip
    await client.patch(f"{API}/{sid}", json={"context": {"a": 1, "b": {"c": 2}}}, headers=user())

    response = await client.post(f"{API}/{sid}/cleanup", headers=user())
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["session_id"] == sid
    assert sorted(body["cleared_keys"]) == ["a", "b"]

    got = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert got["context"] == {}
    assert got["metadata"] == {"env": "prod"}
    assert got["title"] == "t"
    assert got["message_count"] == 1
    messages = (await client.get(f"{API}/{sid}/messages", headers=user())).json()
    assert [m["content"] for m in messages["messages"]] == ["hi"]


async def test_context_cleanup_of_an_empty_context_clears_nothing(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    body = (await client.post(f"{API}/{sid}/cleanup", headers=user())).json()
    assert body == {"success": True, "session_id": sid, "cleared_keys": []}


# ---- recovery info --------------------------------------------------------------------------

RECOVERY_FIELDS = {
    "session_id", "user_id", "status", "created_at", "last_activity_at", "expires_at",
    "message_count", "state_summary", "recovery_info",
}  # fmt: skip


async def test_recovery_info_of_a_live_session(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="t")
    sid = created["session_id"]
    await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "hi"},
                      headers=user())  # fmt: skip
    session = (await client.get(f"{API}/{sid}", headers=user())).json()
    response = await client.get(f"{API}/{sid}/recovery-info", headers=user())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == RECOVERY_FIELDS
    for name in RECOVERY_FIELDS - {"state_summary", "recovery_info"}:
        assert body[name] == session[name], name
    assert body["message_count"] == 1
    assert isinstance(body["state_summary"], dict)
    assert body["recovery_info"] == {
        "can_restore": False,
        "restore_endpoint": None,
        "can_resume": True,
    }


async def test_recovery_info_of_an_archived_session_points_to_restore(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await client.post(f"{API}/{sid}/archive", headers=user())
    body = (await client.get(f"{API}/{sid}/recovery-info", headers=user())).json()
    assert body["status"] == "archived"
    assert body["recovery_info"] == {
        "can_restore": True,
        "restore_endpoint": f"/api/v1/sessions/{sid}/restore",
        "can_resume": False,
    }
    restore = await client.post(body["recovery_info"]["restore_endpoint"], headers=user())
    assert restore.status_code == 200


@pytest.mark.parametrize(
    ("status", "can_resume"), [("in_progress", True), ("completed", False), ("abandoned", False)]
)
async def test_recovery_info_can_resume_follows_the_status(
    client: httpx.AsyncClient, status: str, can_resume: bool
) -> None:
    sid = (await create_session(client))["session_id"]
    await client.patch(f"{API}/{sid}", json={"status": status}, headers=user())
    body = (await client.get(f"{API}/{sid}/recovery-info", headers=user())).json()
    assert body["status"] == status
    assert body["recovery_info"]["can_resume"] is can_resume
    assert body["recovery_info"]["can_restore"] is False
