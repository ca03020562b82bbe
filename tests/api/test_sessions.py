"""The core session endpoints (issue 2), end to end on a real server."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service import errors
from session_service.app import build_store
from session_service.domain.ids import new_session_id
from session_service.store.sessions import NewSession
from tests.conftest import create_session, make_settings, user
from tests.helpers import API, KEYS, user_keys

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UNKNOWN_ID = "sess_00000000000000000000000000000000"
NOT_FOUND_BODY = {"detail": "Session not found", "code": "session_not_found"}


async def _get(client: httpx.AsyncClient, sid: str, user_id: str = "u1") -> httpx.Response:
    return await client.get(f"{API}/{sid}", headers=user(user_id))


# ---- create ---------------------------------------------------------------


async def test_create_answers_201_with_every_field_of_the_data_model(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        API,
        json={
            "title": "DB timeouts",
            "description": "RDS connection timeouts",
            "session_type": "incident",
            "client_id": "ext-1",
            "metadata": {"env": "prod", "nested": {"a": [1, 2]}},
            "timeout_minutes": 30,
        },
        headers=user(),
    )
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"sess_[0-9a-f]{32}", body["session_id"])
    assert body["user_id"] == "u1"
    assert body["title"] == "DB timeouts"
    assert body["description"] == "RDS connection timeouts"
    assert body["status"] == "active"
    assert body["session_type"] == "incident"
    assert body["client_id"] == "ext-1"
    assert body["metadata"] == {"env": "prod", "nested": {"a": [1, 2]}}
    assert body["context"] == {}
    assert body["message_count"] == 0
    assert body["timeout_minutes"] == 30
    assert body["session_resumed"] is False
    for field in ("created_at", "updated_at", "last_activity_at", "expires_at"):
        assert ISO_Z.match(body[field]), (field, body[field])


async def test_create_with_no_body_fields_uses_the_defaults(client: httpx.AsyncClient) -> None:
    body = await create_session(client)
    assert body["title"] is None
    assert body["description"] is None
    assert body["session_type"] == "troubleshooting"
    assert body["client_id"] is None
    assert body["metadata"] == {}
    assert body["timeout_minutes"] == 86400 / 60


async def test_session_ids_are_unique_and_unguessable(client: httpx.AsyncClient) -> None:
    ids = {(await create_session(client))["session_id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(sid) == len("sess_") + 32 for sid in ids)


async def test_create_rejects_unknown_fields_with_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(API, json={"title": "x", "owner": "bob"}, headers=user())
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert "owner" in body["detail"]


async def test_create_rejects_a_wrongly_typed_field_with_422_naming_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(API, json={"metadata": ["not", "an", "object"]}, headers=user())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert "metadata" in response.json()["detail"]


async def test_create_rejects_a_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        API, content=b"{not json", headers={**user(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_stored_record_carries_a_schema_version(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    created = await create_session(client, title="t")
    record = await redis.hgetall(KEYS.session("u1", created["session_id"]))
    assert record["v"] == "1"


# ---- get --------------------------------------------------------------------


async def test_get_returns_what_create_returned(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="DB timeouts", metadata={"env": "prod"})
    got = await _get(client, created["session_id"])
    assert got.status_code == 200
    expected = {k: v for k, v in created.items() if k != "session_resumed"}
    assert got.json() == expected


async def test_get_of_an_unknown_session_is_404_session_not_found(
    client: httpx.AsyncClient,
) -> None:
    response = await _get(client, UNKNOWN_ID)
    assert response.status_code == 404
    assert response.json() == NOT_FOUND_BODY


async def test_a_malformed_session_id_is_simply_not_found(client: httpx.AsyncClient) -> None:
    for bad in ("nope", "sess_XYZ", "sess_" + "0" * 31, "x" * 64, "x" * 65, "sess_" + "a" * 33):
        response = await _get(client, bad)
        assert response.status_code == 404, bad
        assert response.json() == NOT_FOUND_BODY


async def test_another_users_session_answers_exactly_like_a_missing_one(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, "alice")
    theirs = await _get(client, created["session_id"], "bob")
    missing = await _get(client, UNKNOWN_ID, "bob")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == NOT_FOUND_BODY


# ---- list ---------------------------------------------------------------------


async def test_list_returns_sessions_total_limit_offset_most_recent_activity_first(
    client: httpx.AsyncClient,
) -> None:
    a = await create_session(client, title="a")
    b = await create_session(client, title="b")
    c = await create_session(client, title="c")
    await asyncio.sleep(0.005)  # activity is kept in milliseconds: make the heartbeat later
    await client.post(f"{API}/{a['session_id']}/heartbeat", headers=user())
    response = await client.get(API, headers=user())
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert body["limit"] == 50
    assert body["offset"] == 0
    ids = [s["session_id"] for s in body["sessions"]]
    assert ids[0] == a["session_id"]
    assert set(ids) == {a["session_id"], b["session_id"], c["session_id"]}


async def test_list_pages_with_limit_and_offset_in_a_stable_order(
    client: httpx.AsyncClient,
) -> None:
    created = [(await create_session(client, title=str(i)))["session_id"] for i in range(7)]
    full = (await client.get(API, params={"limit": 100}, headers=user())).json()
    order = [s["session_id"] for s in full["sessions"]]
    assert sorted(order) == sorted(created)
    walked: list[str] = []
    for offset in range(0, 7, 3):
        page = await client.get(API, params={"limit": 3, "offset": offset}, headers=user())
        body = page.json()
        assert body["total"] == 7
        assert body["limit"] == 3
        assert body["offset"] == offset
        walked += [s["session_id"] for s in body["sessions"]]
    assert walked == order


async def test_list_rejects_limit_and_offset_out_of_bounds(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        response = await client.get(API, params=params, headers=user())
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"


async def test_list_filters_by_one_or_several_statuses(client: httpx.AsyncClient) -> None:
    active = await create_session(client)
    done = await create_session(client)
    going = await create_session(client)
    await client.patch(f"{API}/{done['session_id']}", json={"status": "completed"}, headers=user())
    await client.patch(
        f"{API}/{going['session_id']}", json={"status": "in_progress"}, headers=user()
    )
    only_done = (await client.get(API, params={"status": "completed"}, headers=user())).json()
    assert [s["session_id"] for s in only_done["sessions"]] == [done["session_id"]]
    assert only_done["total"] == 1
    two = (
        await client.get(API, params=[("status", "active"), ("status", "in_progress")],
                         headers=user())
    ).json()  # fmt: skip
    assert {s["session_id"] for s in two["sessions"]} == {
        active["session_id"],
        going["session_id"],
    }
    assert two["total"] == 2


async def test_list_rejects_an_unknown_status(client: httpx.AsyncClient) -> None:
    response = await client.get(API, params={"status": "paused"}, headers=user())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_list_leaves_archived_sessions_out_unless_asked(client: httpx.AsyncClient) -> None:
    live = await create_session(client)
    archived = await create_session(client)
    await client.post(f"{API}/{archived['session_id']}/archive", headers=user())

    default = (await client.get(API, headers=user())).json()
    assert [s["session_id"] for s in default["sessions"]] == [live["session_id"]]
    assert default["total"] == 1

    included = (await client.get(API, params={"include_archived": "true"}, headers=user())).json()
    assert included["total"] == 2

    only = (await client.get(API, params={"status": "archived"}, headers=user())).json()
    assert [s["session_id"] for s in only["sessions"]] == [archived["session_id"]]
    assert only["total"] == 1


async def test_list_total_never_counts_deleted_sessions(client: httpx.AsyncClient) -> None:
    a = await create_session(client)
    await create_session(client)
    assert (await client.delete(f"{API}/{a['session_id']}", headers=user())).status_code == 204
    body = (await client.get(API, headers=user())).json()
    assert body["total"] == 1
    assert a["session_id"] not in [s["session_id"] for s in body["sessions"]]


async def test_list_of_a_user_without_sessions_is_empty(client: httpx.AsyncClient) -> None:
    body = (await client.get(API, headers=user("nobody"))).json()
    assert body == {"sessions": [], "total": 0, "limit": 50, "offset": 0}


# ---- update -------------------------------------------------------------------


async def test_patch_updates_title_description_and_status(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="old")
    response = await client.patch(
        f"{API}/{created['session_id']}",
        json={"title": "new", "description": "desc", "status": "in_progress"},
        headers=user(),
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["title"], body["description"], body["status"]) == ("new", "desc", "in_progress")
    assert (await _get(client, created["session_id"])).json() == body


async def test_put_behaves_like_patch(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="old", metadata={"keep": 1})
    response = await client.put(
        f"{API}/{created['session_id']}", json={"title": "new"}, headers=user()
    )
    assert response.status_code == 200
    assert response.json()["title"] == "new"
    assert response.json()["metadata"] == {"keep": 1}


async def test_metadata_is_merged_and_a_null_value_removes_the_key(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, metadata={"a": 1, "b": 2, "c": {"x": 1}})
    response = await client.patch(
        f"{API}/{created['session_id']}",
        json={"metadata": {"b": None, "c": {"y": 2}, "d": "new"}},
        headers=user(),
    )
    assert response.status_code == 200
    assert response.json()["metadata"] == {"a": 1, "c": {"y": 2}, "d": "new"}


async def test_update_leaves_fields_that_were_not_sent_untouched(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, title="t", description="d", metadata={"k": "v"})
    body = (await client.patch(f"{API}/{created['session_id']}", json={}, headers=user())).json()
    assert (body["title"], body["description"], body["metadata"]) == ("t", "d", {"k": "v"})
    assert body["created_at"] == created["created_at"]


async def test_update_can_clear_the_title_with_null(client: httpx.AsyncClient) -> None:
    created = await create_session(client, title="t")
    body = (
        await client.patch(f"{API}/{created['session_id']}", json={"title": None}, headers=user())
    ).json()
    assert body["title"] is None


async def test_update_refreshes_updated_at_and_keeps_created_at(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, title="t")
    await asyncio.sleep(0.01)
    body = (
        await client.patch(f"{API}/{created['session_id']}", json={"title": "u"}, headers=user())
    ).json()
    assert body["created_at"] == created["created_at"]
    assert body["updated_at"] > created["updated_at"]


async def test_update_rejects_unknown_fields_and_unknown_statuses(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    for payload in ({"owner": "x"}, {"status": "paused"}, {"session_id": "sess_x"}):
        response = await client.patch(f"{API}/{sid}", json=payload, headers=user())
        assert response.status_code == 422, payload
        assert response.json()["code"] == "validation_error"


# ---- delete ---------------------------------------------------------------------


async def test_delete_answers_204_and_the_session_is_gone(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await client.delete(f"{API}/{sid}", headers=user())
    assert response.status_code == 204
    assert response.content == b""
    assert (await _get(client, sid)).status_code == 404
    again = await client.delete(f"{API}/{sid}", headers=user())
    assert again.status_code == 404


async def test_delete_leaves_no_orphan_keys(client: httpx.AsyncClient, redis: Redis) -> None:
    keep = (await create_session(client, client_id="keep-me"))["session_id"]
    sid = (await create_session(client, title="t", client_id="ext-9"))["session_id"]
    await client.post(f"{API}/{sid}/messages", json={"role": "user", "content": "hi"},
                      headers={**user(), "Idempotency-Key": "k1"})  # fmt: skip
    await client.post(f"{API}/{sid}/cases", json={"case_id": "case-1"}, headers=user())
    await client.patch(f"{API}/{sid}", json={"status": "completed"}, headers=user())
    before = {key async for key in redis.scan_iter("*")}
    assert any(sid in key for key in before)

    assert (await client.delete(f"{API}/{sid}", headers=user())).status_code == 204

    after = {key async for key in redis.scan_iter("*")}
    assert not [key for key in after if sid in key]
    assert user_keys("u1").client("ext-9") not in after
    for key in after:
        kind = await redis.type(key)
        if kind == "zset":
            assert await redis.zscore(key, sid) is None, key
    assert (await _get(client, keep)).status_code == 200


# ---- heartbeat -----------------------------------------------------------------


async def test_heartbeat_answers_with_the_new_deadline_and_extends_the_session(
    client: httpx.AsyncClient,
) -> None:
    created = await create_session(client, timeout_minutes=5)
    await asyncio.sleep(0.01)
    response = await client.post(f"{API}/{created['session_id']}/heartbeat", headers=user())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"session_id", "status", "last_activity_at", "expires_at"}
    assert body["session_id"] == created["session_id"]
    assert body["status"] == "active"
    assert body["expires_at"] > created["expires_at"]
    assert body["last_activity_at"] > created["last_activity_at"]
    got = (await _get(client, created["session_id"])).json()
    assert got["expires_at"] == body["expires_at"]
    assert got["last_activity_at"] == body["last_activity_at"]


# ---- error order -----------------------------------------------------------------


async def test_identity_is_checked_before_the_session(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{API}/{UNKNOWN_ID}", json={"bogus": 1})
    assert response.status_code == 401
    assert response.json()["code"] == "missing_user_id"


async def test_the_session_is_checked_before_the_request_body(client: httpx.AsyncClient) -> None:
    for sid in (UNKNOWN_ID, "garbage"):
        response = await client.patch(f"{API}/{sid}", json={"bogus": 1}, headers=user())
        assert response.status_code == 404, sid
        assert response.json() == NOT_FOUND_BODY


async def test_another_users_session_with_a_bad_body_is_still_404(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client, "alice"))["session_id"]
    response = await client.patch(f"{API}/{sid}", json={"status": "paused"}, headers=user("bob"))
    assert response.status_code == 404
    mine = await client.patch(f"{API}/{sid}", json={"status": "paused"}, headers=user("alice"))
    assert mine.status_code == 422


async def test_unknown_path_and_wrong_method_are_json_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here", headers=user())
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = await client.put(API, headers=user())  # DELETE deletes all the sessions
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


# ---- operations endpoints ---------------------------------------------------------


async def test_health_ready_and_service_info(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    info = (await client.get("/")).json()
    assert info["service"] == "fm-session-service"
    assert info["docs"] == "/docs"
    assert info["openapi"] == "/openapi.json"


async def test_docs_and_openapi_are_served_and_list_the_session_endpoints(
    client: httpx.AsyncClient,
) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths[API]) >= {"get", "post"}
    assert set(paths[API + "/{session_id}"]) >= {"get", "patch", "put", "delete"}
    assert "post" in paths[API + "/{session_id}/heartbeat"]


async def test_the_session_is_checked_before_the_body_on_every_body_route(
    client: httpx.AsyncClient,
) -> None:
    theirs = (await create_session(client, "alice"))["session_id"]
    routes = [("PUT", ""), ("PATCH", ""), ("POST", "/messages"), ("POST", "/cases")]
    for sid in (UNKNOWN_ID, theirs, "bogus"):
        for method, suffix in routes:
            response = await client.request(
                method, f"{API}/{sid}{suffix}", json={"bogus": [1]}, headers=user("bob")
            )
            assert response.status_code == 404, (sid, method, suffix)
            assert response.json() == NOT_FOUND_BODY


async def test_requests_make_no_ping_to_storage(client: httpx.AsyncClient, redis: Redis) -> None:
    sid = (await create_session(client))["session_id"]
    await redis.config_resetstat()
    await client.get(f"{API}/{sid}", headers=user())
    await client.get(API, headers=user())
    await client.post(f"{API}/{sid}/heartbeat", headers=user())
    await client.get("/health")
    stats = await redis.info("commandstats")
    assert "cmdstat_ping" not in stats
    assert "cmdstat_hgetall" in stats


# ---- the store, directly -------------------------------------------------------------------


async def test_the_store_keeps_users_apart_and_deletes_everything(
    redis_url: str, redis: Redis
) -> None:
    store = build_store(make_settings(redis_url), redis_url)
    try:
        new = NewSession.build(new_session_id(), 60_000, title="direct")
        created = await store.create("a:b", new)
        assert created.resumed is False
        assert created.session["title"] == "direct"
        assert (await store.get("a:b", new.session_id))["user_id"] == "a:b"
        with pytest.raises(errors.SessionNotFound):
            await store.get("a", new.session_id)
        total, sessions = await store.list_sessions("a", ["active"], 0, 10)
        assert (total, sessions) == (0, [])
        total, sessions = await store.list_sessions("a:b", ["active"], 0, 10)
        assert total == 1
        assert [s["session_id"] for s in sessions] == [new.session_id]

        await store.delete("a:b", new.session_id)
        with pytest.raises(errors.SessionNotFound):
            await store.get("a:b", new.session_id)
        assert [key async for key in redis.scan_iter("*")] == []
    finally:
        await store.close()
