"""Delete and erase are final (issue 11, item 5).

After a delete answers, no late write brings any key of the session back. An
erase removes everything the user wrote before it was sent while creates,
appends and resumes race it; each racing session ends wholly gone or wholly
present (readable, listed, counted), and an erase with nothing racing leaves no
key at all.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store import erasure
from session_service.store import keys as layout
from session_service.store.keys import Keys
from session_service.store.protocol import EraseArgs
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, user_keys

KEYS = Keys("fms")
ADMIN = user("root", **{"X-User-Roles": '["admin"]'})


def erase_url(user_id: str) -> str:
    return f"/api/v1/users/{urllib.parse.quote(user_id, safe='')}/sessions"


async def _keys(redis: Redis, user_id: str) -> list[str]:
    return [k async for k in redis.scan_iter(match=KEYS.user_pattern(user_id), count=1000)]


def _sid_of(key: str, user_id: str) -> str | None:
    return user_keys(user_id).session_of(key)


# ---- delete ------------------------------------------------------------------------


async def test_after_a_delete_no_late_write_brings_a_key_back(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    h = user("late")
    sid = (await create_session(client, "late", client_id="ext-late"))["session_id"]
    base = f"{API}/{sid}"
    await client.post(f"{base}/messages", json={"role": "user", "content": "x"}, headers=h)
    await client.post(f"{base}/cases", json={"case_id": "c1"}, headers=h)
    assert (await client.delete(base, headers=h)).status_code == 204

    late: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{base}/messages", {"role": "user", "content": "late"}),
        ("POST", f"{base}/heartbeat", None),
        ("PATCH", base, {"title": "late"}),
        ("PUT", base, {"title": "late"}),
        ("PATCH", base, {"status": "completed"}),
        ("PATCH", base, {"status": "archived"}),
        ("POST", f"{base}/archive", None),
        ("POST", f"{base}/restore", None),
        ("POST", f"{base}/cases", {"case_id": "c2"}),
        ("DELETE", f"{base}/cases/c1", None),
        ("POST", f"{base}/cleanup", None),
        ("POST", f"{base}/summaries", {"content": "s", "covers_through": "msg_0000000001"}),
        ("POST", f"{base}/messages", {"role": "tool", "content": "t", "tool_call_id": "c"}),
        ("DELETE", base, None),
    ]
    for method, path, body in late:
        response = await client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "session_not_found"
    keyed = {**h, "Idempotency-Key": "late-append"}
    response = await client.post(
        f"{base}/messages", json={"role": "user", "content": "k"}, headers=keyed
    )
    assert response.status_code == 404
    # A resume by the old client_id creates a new session; the old one stays gone.
    resumed = await client.post(API, json={"client_id": "ext-late"}, headers=h)
    assert resumed.status_code == 201
    new_sid = resumed.json()["session_id"]
    assert new_sid != sid
    assert {_sid_of(k, "late") for k in await _keys(redis, "late")} - {None} == {new_sid}
    assert not [k for k in await _keys(redis, "late") if sid in k]
    assert await redis.zscore(KEYS.expiry("late"), sid) is None


async def test_deletes_racing_writes_leave_no_key_of_a_deleted_session(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    h = user("race")
    sids = [(await create_session(client, "race"))["session_id"] for _ in range(20)]

    async def hammer(sid: str) -> None:
        base = f"{API}/{sid}"
        for i in range(5):
            await client.post(
                f"{base}/messages", json={"role": "user", "content": f"{i}"}, headers=h
            )
            await client.post(f"{base}/heartbeat", headers=h)
            await client.patch(base, json={"title": f"t{i}"}, headers=h)
            await client.post(f"{base}/cases", json={"case_id": f"c{i}"}, headers=h)

    async def delete(sid: str) -> None:
        await asyncio.sleep(0)
        assert (await client.delete(f"{API}/{sid}", headers=h)).status_code == 204

    await asyncio.gather(*(hammer(sid) for sid in sids), *(delete(sid) for sid in sids))
    for sid in sids:
        assert (await client.get(f"{API}/{sid}", headers=h)).status_code == 404
    assert [k for k in await _keys(redis, "race") if _sid_of(k, "race")] == []
    assert await redis.zcard(KEYS.expiry("race")) == 0


# ---- erase -------------------------------------------------------------------------


async def _populate(client: httpx.AsyncClient, user_id: str, n: int) -> list[str]:
    h = user(user_id)
    sids = []
    for i in range(n):
        headers = {**h, "Idempotency-Key": f"pre-{i}"}
        body = {"title": f"pre {i}", "client_id": f"pre-{i}"}
        response = await client.post(API, json=body, headers=headers)
        assert response.status_code == 201
        sid = response.json()["session_id"]
        message = {"role": "user", "content": f"before {i}"}
        keyed = {**h, "Idempotency-Key": f"m-{i}"}
        assert (
            await client.post(f"{API}/{sid}/messages", json=message, headers=keyed)
        ).status_code == 201
        if i % 3 == 0:
            await client.post(f"{API}/{sid}/cases", json={"case_id": "c"}, headers=h)
        if i % 4 == 0:
            call = {"role": "assistant", "tool_calls": [{"id": "t1", "name": "f"}]}
            answer = {"role": "tool", "content": "42", "tool_call_id": "t1"}
            summary = {"content": "so far", "covers_through": "msg_0000000001"}
            for path, body in (("messages", call), ("messages", answer), ("summaries", summary)):
                keyed = {**h, "Idempotency-Key": f"{path}-{i}-{body.get('role', '')}"}
                response = await client.post(f"{API}/{sid}/{path}", json=body, headers=keyed)
                assert response.status_code == 201, response.text
        if i % 5 == 0:
            await client.post(f"{API}/{sid}/archive", headers=h)
        sids.append(sid)
    return sids


async def _assert_whole(client: httpx.AsyncClient, redis: Redis, user_id: str) -> set[str]:
    """Every session that has any key is whole: readable, indexed, listed and counted."""
    keys = await _keys(redis, user_id)
    with_keys = {sid for k in keys if (sid := _sid_of(k, user_id))}
    indexed = set(await redis.zrange(KEYS.expiry(user_id), 0, -1))
    assert with_keys == indexed, (with_keys ^ indexed, keys)
    h = user(user_id)
    listed = await client.get(f"{API}?include_archived=true&limit=100", headers=h)
    assert listed.status_code == 200
    assert {s["session_id"] for s in listed.json()["sessions"]} == indexed
    assert listed.json()["total"] == len(indexed)
    for sid in indexed:
        got = await client.get(f"{API}/{sid}?include_messages=true", headers=h)
        assert got.status_code == 200, got.text
        assert got.json()["message_count"] == len(got.json()["messages"])
        assert await redis.exists(KEYS.session(user_id, sid))
    for key in keys:
        if user_keys(user_id).kind_of(key) in (layout.CLIENT, layout.CREATE_IDEMPOTENCY):
            assert (await redis.get(key) or "").endswith(tuple(indexed) or ("-",)), key
    assert not await redis.exists(user_keys(user_id).erase), "the erase queue was left"
    return indexed


async def test_an_erase_racing_creates_appends_and_resumes_leaves_whole_sessions(
    client: httpx.AsyncClient, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "ERASE_SLICE", 3)  # many slices for the writes to race
    victim = "racer"
    h = user(victim)
    before = await _populate(client, victim, 24)
    answers: dict[str, list[int]] = {"create": [], "append": [], "resume": []}
    erased = asyncio.Event()
    created: list[str] = []

    async def writer(w: int) -> None:
        i = 0
        while not erased.is_set():
            i += 1
            body = {"title": f"racing {w}-{i}", "client_id": f"race-{w}-{i}"}
            keyed = {**h, "Idempotency-Key": f"race-{w}-{i}"}
            response = await client.post(API, json=body, headers=keyed)
            answers["create"].append(response.status_code)
            if response.status_code == 201:
                sid = response.json()["session_id"]
                created.append(sid)
                for j in range(2):
                    message = {"role": "user", "content": f"racing {w}-{i}-{j}"}
                    response = await client.post(f"{API}/{sid}/messages", json=message, headers=h)
                    answers["append"].append(response.status_code)
            target = before[(w + i) % len(before)]
            message = {"role": "assistant", "content": "late"}
            response = await client.post(f"{API}/{target}/messages", json=message, headers=h)
            answers["append"].append(response.status_code)
            resume = {"client_id": f"pre-{(w * 7 + i) % len(before)}"}
            response = await client.post(API, json=resume, headers=h)
            answers["resume"].append(response.status_code)

    async def erase() -> httpx.Response:
        await asyncio.sleep(0)
        try:
            return await client.delete(erase_url(victim), headers=ADMIN)
        finally:
            erased.set()

    *_, response = await asyncio.gather(*(writer(w) for w in range(3)), erase())
    assert response.status_code == 200, response.text
    assert response.json()["deleted_sessions"] >= len(before)
    print({k: sorted(set(v)) for k, v in answers.items()}, len(created))
    assert set(answers["create"]) <= {200, 201}
    assert set(answers["append"]) <= {201, 404, 409}
    assert set(answers["resume"]) <= {200, 201}

    survivors = await _assert_whole(client, redis, victim)
    assert not survivors & set(before), "a session from before the erase survived it"
    # With nothing racing, the next erase leaves the user no key at all.
    again = await client.delete(erase_url(victim), headers=ADMIN)
    assert again.status_code == 200
    assert again.json()["deleted_sessions"] == len(survivors)
    assert await _keys(redis, victim) == []


async def test_an_interrupted_erase_is_finished_by_the_next_one(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(max_sessions_per_user=1_000) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        # More than a small zset holds, so one ZSCAN slice is a part of them.
        before = [(await create_session(client, "halfway"))["session_id"] for _ in range(150)]
        await _populate(client, "halfway", 4)
        # One slice only, as if the erasing process died after it.
        reply = await store._write(
            store.scripts.erase,
            "halfway",
            EraseArgs(slice=4, run="stopped", cutoff=None, cursor="0", mark_ttl_ms=600_000),
        )
        _, cursor, dropped, *_, done = reply
        assert (cursor != "0", done) == (True, 0)
        assert 0 < dropped < len(before)
        later = [(await create_session(client, "halfway"))["session_id"] for _ in range(3)]
        response = await client.delete(erase_url("halfway"), headers=ADMIN)
        assert response.status_code == 200
        # What the first slice left, and the 3 created before this erase was sent.
        assert response.json()["deleted_sessions"] == len(before) + 4 - dropped + len(later)
    assert await _keys(redis, "halfway") == []


async def test_a_queue_left_by_an_erase_of_an_earlier_release_is_dropped(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    """An earlier release moved the expiry index aside as its erase queue (`e`),
    hiding the sessions from it until the next erase; delete-all and erase both drop them."""
    for user_id, how in (("old1", "erase"), ("old2", "delete-all")):
        sids = await _populate(client, user_id, 6)
        await redis.rename(KEYS.expiry(user_id), user_keys(user_id).erase)
        if how == "erase":
            response = await client.delete(erase_url(user_id), headers=ADMIN)
            assert response.json()["deleted_sessions"] == len(sids)
        else:
            response = await client.delete(API, headers=user(user_id))
            assert response.json()["deleted"] == len(sids)
        for sid in sids:
            assert (await client.get(f"{API}/{sid}", headers=user(user_id))).status_code == 404
    assert await _keys(redis, "old1") == []
