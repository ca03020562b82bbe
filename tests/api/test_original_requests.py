"""Requests written against the original service keep working (issue 12, item 3).

Creates go through both the fast path and FastAPI's router (`?via=fastapi`),
so `null` means "not given" on both.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, epoch_ms

KEYS = Keys("fms")
PATHS = (API, f"{API}?via=fastapi")
UNKNOWN_ID = "sess_" + "0" * 32


# ---- create: null is "not given" ---------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_create_with_every_optional_field_null_uses_the_defaults(
    make_client: ClientFactory, path: str
) -> None:
    nulls = dict.fromkeys(
        ("title", "description", "session_type", "client_id", "metadata", "timeout_minutes")
    )
    async with make_client(default_session_ttl=600) as client:
        response = await client.post(path, json=nulls, headers=user())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["session_type"] == "troubleshooting"
    assert (body["title"], body["description"], body["client_id"]) == (None, None, None)
    assert body["metadata"] == {}
    assert body["timeout_minutes"] == 10
    assert epoch_ms(body["expires_at"]) - epoch_ms(body["last_activity_at"]) == 600_000


@pytest.mark.parametrize("path", PATHS)
async def test_create_with_a_null_session_type_alongside_given_fields(
    client: httpx.AsyncClient, path: str
) -> None:
    body = {"session_type": None, "title": "t", "metadata": None, "timeout_minutes": 5}
    response = await client.post(path, json=body, headers=user())
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["session_type"], created["title"], created["timeout_minutes"]) == (
        "troubleshooting",
        "t",
        5,
    )
    stored = await client.get(f"{API}/{created['session_id']}", headers=user())
    assert stored.json()["session_type"] == "troubleshooting"


@pytest.mark.parametrize("path", PATHS)
async def test_a_null_field_and_an_omitted_one_are_the_same_request_for_idempotency(
    client: httpx.AsyncClient, path: str
) -> None:
    headers = {**user(), "Idempotency-Key": f"k-{path}"}
    first = await client.post(path, json={"session_type": None}, headers=headers)
    again = await client.post(path, json={}, headers=headers)
    explicit = await client.post(path, json={"session_type": "troubleshooting"}, headers=headers)
    assert first.status_code == 201, first.text
    assert again.status_code == explicit.status_code == 201
    assert again.json()["session_id"] == explicit.json()["session_id"] == first.json()["session_id"]
    listed = (await client.get(API, headers=user())).json()
    assert listed["total"] == 1


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "body", [{"session_type": "bad type"}, {"owner": None}, {"timeout_minutes": "5"}]
)
async def test_create_still_rejects_bad_values_and_unknown_fields(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body, headers=user())
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


# ---- PUT/PATCH: null keeps today's meaning ------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_update_null_clears_texts_and_leaves_the_rest(
    client: httpx.AsyncClient, method: str
) -> None:
    created = await create_session(
        client, title="t", description="d", metadata={"k": "v"}, timeout_minutes=7
    )
    sid = created["session_id"]
    await client.patch(f"{API}/{sid}", json={"context": {"c": 1}, "status": "completed"},
                       headers=user())  # fmt: skip
    nulls = dict.fromkeys(
        ("title", "description", "status", "metadata", "context", "timeout_minutes")
    )
    response = await client.request(method, f"{API}/{sid}", json=nulls, headers=user())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], body["description"]) == (None, None)
    assert body["status"] == "completed"
    assert (body["metadata"], body["context"]) == ({"k": "v"}, {"c": 1})
    assert body["timeout_minutes"] == 7


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_update_timeout_minutes_recomputes_expires_at_from_now(
    client: httpx.AsyncClient, redis: Redis, method: str
) -> None:
    created = await create_session(client, timeout_minutes=5)
    sid = created["session_id"]
    response = await client.request(
        method, f"{API}/{sid}", json={"timeout_minutes": 90}, headers=user()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timeout_minutes"] == 90
    assert body["last_activity_at"] >= created["last_activity_at"]
    deadline = epoch_ms(body["expires_at"])
    assert deadline - epoch_ms(body["last_activity_at"]) == 90 * 60_000
    # The keys themselves carry the new deadline, and the expiry index agrees.
    assert await redis.pexpiretime(KEYS.session("u1", sid)) == deadline
    assert await redis.zscore(KEYS.expiry("u1"), sid) == deadline
    assert (await client.get(f"{API}/{sid}", headers=user())).json() == body


async def test_a_later_heartbeat_uses_the_new_timeout(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, timeout_minutes=5))["session_id"]
    await client.patch(f"{API}/{sid}", json={"timeout_minutes": 30}, headers=user())
    beat = (await client.post(f"{API}/{sid}/heartbeat", headers=user())).json()
    assert epoch_ms(beat["expires_at"]) - epoch_ms(beat["last_activity_at"]) == 30 * 60_000


async def test_update_timeout_minutes_shortens_the_window_too(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, timeout_minutes=600))["session_id"]
    body = (await client.patch(f"{API}/{sid}", json={"timeout_minutes": 1}, headers=user())).json()
    assert epoch_ms(body["expires_at"]) - epoch_ms(body["last_activity_at"]) == 60_000


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("minutes", [0, -1, 10081, "5", 1.5, True])
async def test_update_timeout_minutes_out_of_bounds_is_422_and_writes_nothing(
    client: httpx.AsyncClient, method: str, minutes: Any
) -> None:
    created = await create_session(client, title="t", timeout_minutes=5)
    sid = created["session_id"]
    response = await client.request(
        method, f"{API}/{sid}", json={"timeout_minutes": minutes, "title": "u"}, headers=user()
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert "timeout_minutes" in response.json()["detail"]
    stored = (await client.get(f"{API}/{sid}", headers=user())).json()
    assert (stored["title"], stored["timeout_minutes"]) == ("t", 5)
    assert stored["updated_at"] == created["updated_at"]


async def test_update_timeout_bounds_come_from_the_settings(make_client: ClientFactory) -> None:
    async with make_client(session_min_timeout_minutes=5, session_max_timeout_minutes=10) as c:
        sid = (await create_session(c))["session_id"]
        for minutes, status in ((4, 422), (5, 200), (10, 200), (11, 422)):
            response = await c.patch(
                f"{API}/{sid}", json={"timeout_minutes": minutes}, headers=user()
            )
            assert response.status_code == status, minutes


async def test_update_timeout_of_an_unknown_session_is_404_even_when_out_of_bounds(
    client: httpx.AsyncClient,
) -> None:
    for minutes in (5, 0, 10**6):
        response = await client.patch(
            f"{API}/{UNKNOWN_ID}", json={"timeout_minutes": minutes}, headers=user()
        )
        assert response.status_code == 404, minutes
        assert response.json()["code"] == "session_not_found"


async def test_update_timeout_of_an_archived_session_is_409_session_archived(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client, timeout_minutes=5))["session_id"]
    archived = (await client.post(f"{API}/{sid}/archive", headers=user())).json()
    response = await client.patch(f"{API}/{sid}", json={"timeout_minutes": 9}, headers=user())
    assert response.status_code == 409
    assert response.json()["code"] == "session_archived"
    assert (await client.get(f"{API}/{sid}", headers=user())).json() == archived


async def test_update_still_rejects_unknown_fields(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    for method in ("PATCH", "PUT"):
        response = await client.request(method, f"{API}/{sid}", json={"timeout": 5}, headers=user())
        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"
