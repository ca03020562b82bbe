"""X-User-ID rules and user isolation with hostile user ids (issue 2, item 6)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import user
from tests.helpers import API

Headers = list[tuple[bytes, bytes]]


def as_user(user_id: str) -> Headers:
    """Identity headers as raw UTF-8 bytes, as the gateway sends non-ASCII ids."""
    return [(b"X-User-ID", user_id.encode("utf-8"))]


async def create_session(client: httpx.AsyncClient, user_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post(API, json=body, headers=as_user(user_id))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


HOSTILE_IDS = [
    "a:b",
    "a",
    "a:",
    ":b",
    "{x}",
    "{a}:b",
    "}{",
    "*",
    "?",
    "[ab]",
    "u 1",
    " u1",
    "u1 ",
    "ümlaut-ユーザー-🙂",
    "u1",
    "U1",
    "u10",
    "u1:s:sess_00000000000000000000000000000000",
    "fms:{dTE}:",
    "x" * 256,
]


async def test_missing_user_id_is_401_missing_user_id(client: httpx.AsyncClient) -> None:
    response = await client.get(API)
    assert response.status_code == 401
    assert response.json() == {"detail": response.json()["detail"], "code": "missing_user_id"}


async def test_empty_user_id_is_401_missing_user_id(client: httpx.AsyncClient) -> None:
    response = await client.get(API, headers={"X-User-ID": ""})
    assert response.status_code == 401
    assert response.json()["code"] == "missing_user_id"


async def test_a_user_id_of_256_characters_is_accepted(client: httpx.AsyncClient) -> None:
    created = await create_session(client, "é" * 256)
    assert created["user_id"] == "é" * 256


async def test_a_user_id_longer_than_256_characters_is_400_invalid_user_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(API, headers={"X-User-ID": "x" * 257})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_user_id"


@pytest.mark.parametrize("control", ["\t", "\x01", "\x1f", "\x7f", "\x85"])
async def test_a_user_id_with_a_control_character_is_400_invalid_user_id(
    client: httpx.AsyncClient, control: str
) -> None:
    raw = f"u{control}1".encode()
    response = await client.get(API, headers=[(b"X-User-ID", raw)])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_user_id"


async def test_a_user_id_that_is_not_utf8_is_400_invalid_user_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(API, headers=[(b"X-User-ID", b"u\xff1")])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_user_id"


async def test_identity_is_required_on_every_api_endpoint(client: httpx.AsyncClient) -> None:
    sid = "sess_00000000000000000000000000000000"
    calls = [
        ("POST", API),
        ("GET", API),
        ("POST", f"{API}/search"),
        ("POST", f"{API}/cleanup"),
        ("GET", f"{API}/{sid}"),
        ("PATCH", f"{API}/{sid}"),
        ("PUT", f"{API}/{sid}"),
        ("DELETE", f"{API}/{sid}"),
        ("POST", f"{API}/{sid}/heartbeat"),
        ("POST", f"{API}/{sid}/archive"),
        ("POST", f"{API}/{sid}/restore"),
        ("POST", f"{API}/{sid}/cleanup"),
        ("GET", f"{API}/{sid}/recovery-info"),
        ("GET", f"{API}/{sid}/cases"),
        ("POST", f"{API}/{sid}/cases"),
        ("DELETE", f"{API}/{sid}/cases/c1"),
    ]
    for method, path in calls:
        response = await client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "missing_user_id"


async def test_health_and_ready_need_no_identity(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_user_ids_are_compared_exactly_case_and_whitespace_included(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client, "Alice"))["session_id"]
    for other in ("alice", "ALICE", "Alice ", " Alice", "Alic"):
        response = await client.get(f"{API}/{sid}", headers=as_user(other))
        assert response.status_code == 404, repr(other)
    assert (await client.get(f"{API}/{sid}", headers=user("Alice"))).status_code == 200


async def test_hostile_user_ids_each_see_only_their_own_sessions(
    client: httpx.AsyncClient,
) -> None:
    owned: dict[str, str] = {}
    for uid in HOSTILE_IDS:
        created = await create_session(client, uid, title=f"of {uid}"[:200])
        assert created["user_id"] == uid
        owned[uid] = created["session_id"]

    for uid in HOSTILE_IDS:
        listed = (await client.get(API, headers=as_user(uid))).json()
        assert listed["total"] == 1, uid
        assert [s["session_id"] for s in listed["sessions"]] == [owned[uid]]
        assert listed["sessions"][0]["user_id"] == uid
        found = (await client.post(f"{API}/search", json={}, headers=as_user(uid))).json()
        assert [s["session_id"] for s in found["sessions"]] == [owned[uid]], uid


async def test_hostile_user_ids_cannot_reach_each_others_sessions(
    client: httpx.AsyncClient,
) -> None:
    owned = {uid: (await create_session(client, uid))["session_id"] for uid in HOSTILE_IDS}
    for uid in HOSTILE_IDS:
        for other, sid in owned.items():
            if other == uid:
                continue
            response = await client.get(f"{API}/{sid}", headers=as_user(uid))
            assert response.status_code == 404, (uid, other)


async def test_a_glob_user_id_cannot_erase_or_clean_up_other_users(
    client: httpx.AsyncClient,
) -> None:
    victim = (await create_session(client, "victim"))["session_id"]
    for uid in ("*", "?", "[a-z]*"):
        cleanup = await client.post(f"{API}/cleanup", headers=as_user(uid))
        assert cleanup.status_code == 200
        erase = await client.delete(
            f"/api/v1/users/{quote(uid, safe='')}/sessions", headers=as_user(uid)
        )
        assert erase.status_code == 403
    assert (await client.get(f"{API}/{victim}", headers=user("victim"))).status_code == 200


async def test_every_key_of_a_user_carries_that_users_tag_only(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    await create_session(client, "a:b", client_id="c")
    await create_session(client, "a", client_id="c")
    keys = [key async for key in redis.scan_iter("*")]
    tags = {key.split("{", 1)[1].split("}", 1)[0] for key in keys}
    assert len(tags) == 2
    for key in keys:
        assert key.count("{") == key.count("}") == 1


async def test_unicode_user_ids_are_compared_byte_for_byte_without_normalization(
    client: httpx.AsyncClient,
) -> None:
    composed, decomposed = "jos\u00e9", "jose\u0301"
    sid = (await create_session(client, composed))["session_id"]
    other = await client.get(f"{API}/{sid}", headers=as_user(decomposed))
    assert other.status_code == 404
    listed = (await client.get(API, headers=as_user(decomposed))).json()
    assert listed["total"] == 0
    mine = await client.get(f"{API}/{sid}", headers=as_user(composed))
    assert mine.json()["user_id"] == composed
