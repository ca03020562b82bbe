"""Erasure of every session of a user (admin only)."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import create_session, user
from tests.helpers import API

KEYS = Keys("fms")
ADMIN = {"X-User-Roles": '["admin"]'}


def erase_url(user_id: str) -> str:
    return f"/api/v1/users/{urllib.parse.quote(user_id, safe='')}/sessions"


def _h(user_id: str, **extra: str) -> dict[str, str | bytes]:
    return {"X-User-ID": user_id.encode("utf-8"), **extra}


async def _populate(client: httpx.AsyncClient, user_id: str) -> list[str]:
    """Sessions with every kind of per-user key: messages, links, idempotency, client ids."""
    h = _h(user_id)
    sids = []
    for i in range(3):
        headers = {**h, "Idempotency-Key": f"create-{i}"}
        body = {"title": f"t{i}", "client_id": f"ext-{i}", "metadata": {"i": i}}
        response = await client.post(API, json=body, headers=headers)
        assert response.status_code == 201
        sids.append(response.json()["session_id"])
    for sid in sids:
        for j in range(2):
            message = {"role": "user", "content": f"m{j}"}
            headers = {**h, "Idempotency-Key": f"{sid}-{j}"}
            response = await client.post(f"{API}/{sid}/messages", json=message, headers=headers)
            assert response.status_code == 201
        linked = await client.post(f"{API}/{sid}/cases", json={"case_id": "c1"}, headers=h)
        assert linked.status_code == 200
    assert (await client.post(f"{API}/{sids[0]}/archive", headers=h)).status_code == 200
    return sids


async def _user_keys(redis: Redis, user_id: str) -> list[str]:
    return [k async for k in redis.scan_iter(match=KEYS.user_pattern(user_id), count=1000)]


@pytest.mark.parametrize("roles", [None, "support", '["support", "ops"]'])
async def test_erasure_needs_admin(
    client: httpx.AsyncClient, redis: Redis, roles: str | None
) -> None:
    await _populate(client, "victim")
    before = sorted(await _user_keys(redis, "victim"))
    headers = user("mallory") if roles is None else user("mallory", **{"X-User-Roles": roles})
    response = await client.delete(erase_url("victim"), headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert sorted(await _user_keys(redis, "victim")) == before
    # Not even one's own sessions can be erased this way without the role.
    response = await client.delete(erase_url("mallory"), headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize("victim", ["victim", "*", "a:b", "{x}", "ユーザー", "a/b", "../x", "%2F"])
async def test_admin_erases_everything_of_one_user(
    client: httpx.AsyncClient, redis: Redis, victim: str
) -> None:
    # Neighbours whose ids look like the victim's in a glob or a prefix.
    others = ["other", "victim2", "*x", "a", "{x}}", "ユーザーX"]
    await _populate(client, victim)
    for other in others:
        await _populate(client, other)
    before = {o: sorted(await _user_keys(redis, o)) for o in others}
    assert await _user_keys(redis, victim)

    response = await client.delete(erase_url(victim), headers=user("root", **ADMIN))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["user_id"] == victim
    assert report["deleted_sessions"] == 3
    assert report["deleted_keys"] >= 0

    assert await _user_keys(redis, victim) == []
    for other in others:
        assert sorted(await _user_keys(redis, other)) == before[other]
        listed = await client.get(f"{API}?include_archived=true", headers=_h(other))
        assert listed.json()["total"] == 3
    listed = await client.get(f"{API}?include_archived=true", headers=_h(victim))
    assert listed.json() == {"sessions": [], "total": 0, "limit": 50, "offset": 0}

    # Erasing again finds nothing; the user can start afresh (resume finds no old session).
    again = await client.delete(erase_url(victim), headers=user("root", **ADMIN))
    assert again.json()["deleted_sessions"] == 0
    fresh = await client.post(API, json={"client_id": "ext-0"}, headers=_h(victim))
    assert fresh.status_code == 201


async def test_admin_may_erase_own_sessions(client: httpx.AsyncClient, redis: Redis) -> None:
    await create_session(client, "root")
    response = await client.delete(erase_url("root"), headers=user("root", **ADMIN))
    assert response.json()["deleted_sessions"] == 1
    assert await _user_keys(redis, "root") == []
