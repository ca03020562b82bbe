"""Status rules, the read-only archived session and archive/restore (issue 4, items 1 and 4)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from tests.conftest import create_session, user
from tests.helpers import API, get_json

STATUSES = ["active", "in_progress", "completed", "archived", "abandoned"]
ALLOWED: dict[str, set[str]] = {
    "active": {"in_progress", "completed", "abandoned", "archived"},
    "in_progress": {"completed", "abandoned", "archived"},
    "completed": {"in_progress", "archived"},
    "abandoned": {"in_progress", "archived"},
    "archived": set(),
}
# How to bring a fresh session into each status through allowed steps.
PATHS: dict[str, list[str]] = {
    "active": [],
    "in_progress": ["in_progress"],
    "completed": ["completed"],
    "abandoned": ["abandoned"],
    "archived": ["archived"],
}
PAIRS = [(a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b]


async def _session_in(client: httpx.AsyncClient, status: str, **body: Any) -> str:
    sid: str = (await create_session(client, **body))["session_id"]
    for step in PATHS[status]:
        response = await _set_status(client, sid, step)
        assert response.status_code == 200, response.text
    return sid


async def _set_status(
    client: httpx.AsyncClient, sid: str, status: str, method: str = "PATCH"
) -> httpx.Response:
    return await client.request(method, f"{API}/{sid}", json={"status": status}, headers=user())


async def _get(client: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    session: dict[str, Any] = await get_json(client, f"{API}/{sid}")
    return session


# ---- transitions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"), [p for p in PAIRS if p[1] in ALLOWED[p[0]]], ids="->".join
)
async def test_allowed_transition_succeeds(
    client: httpx.AsyncClient, current: str, target: str
) -> None:
    sid = await _session_in(client, current)
    response = await _set_status(client, sid, target)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == target
    assert (await _get(client, sid))["status"] == target


@pytest.mark.parametrize(
    ("current", "target"), [p for p in PAIRS if p[1] not in ALLOWED[p[0]]], ids="->".join
)
async def test_forbidden_transition_is_409_naming_the_allowed_ones(
    client: httpx.AsyncClient, current: str, target: str
) -> None:
    sid = await _session_in(client, current)
    response = await _set_status(client, sid, target)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "invalid_status_transition"
    assert body["current_status"] == current
    for allowed in ALLOWED[current]:
        assert allowed in body["detail"], (allowed, body["detail"])
    if current == "archived":
        assert "restore" in body["detail"]
    assert (await _get(client, sid))["status"] == current


async def test_put_enforces_the_same_transition_rules(client: httpx.AsyncClient) -> None:
    sid = await _session_in(client, "completed")
    forbidden = await _set_status(client, sid, "abandoned", method="PUT")
    assert forbidden.status_code == 409
    assert forbidden.json()["code"] == "invalid_status_transition"
    allowed = await _set_status(client, sid, "in_progress", method="PUT")
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "in_progress"


async def test_setting_the_current_status_again_is_a_no_op(client: httpx.AsyncClient) -> None:
    sid = await _session_in(client, "in_progress")
    response = await _set_status(client, sid, "in_progress")
    assert response.status_code == 200
    assert response.json()["status"] == "in_progress"


async def test_an_unknown_status_is_422(client: httpx.AsyncClient) -> None:
    sid = await _session_in(client, "active")
    for status in ("paused", "ACTIVE", "", 1):
        response = await client.patch(f"{API}/{sid}", json={"status": status}, headers=user())
        assert response.status_code == 422, status
        assert response.json()["code"] == "validation_error"


async def test_a_failed_transition_writes_nothing(client: httpx.AsyncClient) -> None:
    sid = await _session_in(client, "completed", title="keep")
    before = await _get(client, sid)
    response = await client.patch(
        f"{API}/{sid}", json={"status": "abandoned", "title": "changed"}, headers=user()
    )
    assert response.status_code == 409
    assert await _get(client, sid) == before


async def test_a_status_change_moves_the_session_between_list_filters(
    client: httpx.AsyncClient,
) -> None:
    sid = await _session_in(client, "active")
    await _set_status(client, sid, "completed")
    active = (await client.get(API, params={"status": "active"}, headers=user())).json()
    done = (await client.get(API, params={"status": "completed"}, headers=user())).json()
    assert active["total"] == 0
    assert [s["session_id"] for s in done["sessions"]] == [sid]


# ---- archived is read-only ------------------------------------------------------------


@pytest.fixture
async def archived(client: httpx.AsyncClient) -> str:
    sid = await _session_in(client, "in_progress", title="t", metadata={"k": "v"})
    await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "hi"},
                      headers=user())  # fmt: skip
    response = await client.post(f"{API}/{sid}/archive", headers=user())
    assert response.status_code == 200
    return sid


@pytest.mark.parametrize("target", ["active", "in_progress", "completed", "abandoned"])
async def test_archived_status_change_is_409_invalid_status_transition(
    client: httpx.AsyncClient, archived: str, target: str
) -> None:
    response = await _set_status(client, archived, target)
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_status_transition"


@pytest.mark.parametrize(
    "payload",
    [{"title": "x"}, {"description": "x"}, {"metadata": {"a": 1}}, {"context": {"a": 1}},
     {"title": None}, {"metadata": {"k": None}}],
)  # fmt: skip
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_archived_field_update_is_409_session_archived(
    client: httpx.AsyncClient, archived: str, payload: dict[str, Any], method: str
) -> None:
    before = await _get(client, archived)
    response = await client.request(method, f"{API}/{archived}", json=payload, headers=user())
    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"
    assert await _get(client, archived) == before


async def test_archived_append_is_409_session_archived(
    client: httpx.AsyncClient, archived: str
) -> None:
    response = await client.post(
        f"{API}/{archived}/messages", json={"role": "user", "content": "more"}, headers=user()
    )
    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"
    assert (await _get(client, archived))["message_count"] == 1


async def test_archived_context_cleanup_is_409_session_archived(
    client: httpx.AsyncClient, archived: str
) -> None:
    response = await client.post(f"{API}/{archived}/cleanup", headers=user())
    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"


async def test_archived_heartbeat_is_200_and_changes_nothing(
    client: httpx.AsyncClient, archived: str
) -> None:
    before = await _get(client, archived)
    response = await client.post(f"{API}/{archived}/heartbeat", headers=user())
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "archived"
    assert body["expires_at"] == before["expires_at"]
    assert body["last_activity_at"] == before["last_activity_at"]
    assert await _get(client, archived) == before


async def test_archived_reads_export_case_links_and_delete_work(
    client: httpx.AsyncClient, archived: str
) -> None:
    for path in ("", "/messages", "/stats", "/export", "/recovery-info", "/cases"):
        response = await client.get(f"{API}/{archived}{path}", headers=user())
        assert response.status_code == 200, (path, response.text)
    link = await client.post(f"{API}/{archived}/cases", json={"case_id": "c1"}, headers=user())
    assert link.status_code == 200
    unlink = await client.delete(f"{API}/{archived}/cases/c1", headers=user())
    assert unlink.status_code == 204
    assert (await client.delete(f"{API}/{archived}", headers=user())).status_code == 204
    assert (await client.get(f"{API}/{archived}", headers=user())).status_code == 404


async def test_patch_to_archived_on_an_archived_session_is_a_no_op(
    client: httpx.AsyncClient, archived: str
) -> None:
    before = await _get(client, archived)
    response = await _set_status(client, archived, "archived")
    assert response.status_code == 200
    assert await _get(client, archived) == before


# ---- archive / restore ------------------------------------------------------------------


async def test_archive_answers_the_archived_session_and_is_idempotent(
    client: httpx.AsyncClient,
) -> None:
    sid = await _session_in(client, "active")
    first = await client.post(f"{API}/{sid}/archive", headers=user())
    assert first.status_code == 200
    assert first.json()["status"] == "archived"
    second = await client.post(f"{API}/{sid}/archive", headers=user())
    assert second.status_code == 200
    assert second.json() == first.json()


@pytest.mark.parametrize("before", ["active", "in_progress", "completed", "abandoned"])
async def test_restore_returns_the_status_before_archiving(
    client: httpx.AsyncClient, before: str
) -> None:
    sid = await _session_in(client, before)
    await client.post(f"{API}/{sid}/archive", headers=user())
    response = await client.post(f"{API}/{sid}/restore", headers=user())
    assert response.status_code == 200
    assert response.json()["status"] == before
    assert (await _get(client, sid))["status"] == before


async def test_restore_after_archiving_through_patch_returns_the_previous_status(
    client: httpx.AsyncClient,
) -> None:
    sid = await _session_in(client, "completed")
    await _set_status(client, sid, "archived")
    response = await client.post(f"{API}/{sid}/restore", headers=user())
    assert response.json()["status"] == "completed"


async def test_archive_restore_round_trip_keeps_messages_metadata_and_timestamps(
    client: httpx.AsyncClient,
) -> None:
    sid = await _session_in(
        client, "in_progress", title="t", description="d", metadata={"env": "prod"}
    )
    for text in ("one", "two"):
        await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": text},
                          headers=user())  # fmt: skip
    await client.patch(f"{API}/{sid}", json={"context": {"h": 1}}, headers=user())
    await client.post(f"{API}/{sid}/cases", json={"case_id": "c1"}, headers=user())
    before = await _get(client, sid)
    messages_before = (await client.get(f"{API}/{sid}/messages", headers=user())).json()

    archived = (await client.post(f"{API}/{sid}/archive", headers=user())).json()
    restored = (await client.post(f"{API}/{sid}/restore", headers=user())).json()

    unchanged = ("title", "description", "metadata", "context", "message_count", "created_at",
                 "updated_at", "last_activity_at", "client_id", "session_type")  # fmt: skip
    for field in unchanged:
        assert archived[field] == before[field], field
        assert restored[field] == before[field], field
    messages_after = (await client.get(f"{API}/{sid}/messages", headers=user())).json()
    assert messages_after == messages_before
    cases = (await client.get(f"{API}/{sid}/cases", headers=user())).json()
    assert [c["case_id"] for c in cases["cases"]] == ["c1"]


async def test_restore_of_a_session_that_is_not_archived_is_409_not_archived(
    client: httpx.AsyncClient,
) -> None:
    for status in ("active", "in_progress", "completed", "abandoned"):
        sid = await _session_in(client, status)
        response = await client.post(f"{API}/{sid}/restore", headers=user())
        assert response.status_code == 409, status
        assert response.json()["code"] == "not_archived"
        assert (await _get(client, sid))["status"] == status


async def test_restore_twice_is_409_not_archived_the_second_time(
    client: httpx.AsyncClient, archived: str
) -> None:
    assert (await client.post(f"{API}/{archived}/restore", headers=user())).status_code == 200
    again = await client.post(f"{API}/{archived}/restore", headers=user())
    assert again.status_code == 409
    assert again.json()["code"] == "not_archived"


async def test_a_restored_session_is_writable_again(
    client: httpx.AsyncClient, archived: str
) -> None:
    await client.post(f"{API}/{archived}/restore", headers=user())
    response = await client.patch(f"{API}/{archived}", json={"title": "again"}, headers=user())
    assert response.status_code == 200
    assert response.json()["title"] == "again"


async def test_concurrent_transitions_apply_one_at_a_time(client: httpx.AsyncClient) -> None:
    sid = await _session_in(client, "active")
    # completed and abandoned cannot follow each other, so only one may win.
    responses = await asyncio.gather(
        *(_set_status(client, sid, target) for target in ["completed", "abandoned"] * 5)
    )
    winners = {r.json()["status"] for r in responses if r.status_code == 200}
    assert len(winners) == 1
    assert all(r.status_code in (200, 409) for r in responses)
    assert (await _get(client, sid))["status"] == winners.pop()


async def test_concurrent_restores_restore_once(client: httpx.AsyncClient, archived: str) -> None:
    responses = await asyncio.gather(
        *(client.post(f"{API}/{archived}/restore", headers=user()) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    assert (await _get(client, archived))["status"] == "in_progress"
