"""Key safety: after hostile inputs every key sits under its user's tag, in a known shape."""

from __future__ import annotations

import re
import urllib.parse
from importlib import resources
from typing import Any

import httpx
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, user
from tests.helpers import API, KEY_SUFFIX, split_key

KEYS = Keys("fms")

HOSTILE_USERS = [
    "*",
    "?",
    "[ab]",
    "{u}",
    "}{",
    "a:b",
    "fms:{YQ}:",
    "YQ",
    "a",
    "a*",
    "\\x00",
    "'; return redis.call('FLUSHALL') --",
    "]] .. redis.call('FLUSHALL') .. [[",
    "ユーザー",
    "😀 emoji",
    "a\u200bb",
    "x" * 256,
]
CLIENT_IDS = ["*", "{x}", "a:b:c", "../..", "'--", "]]", "%s%n", "c" * 128]
IDEMPOTENCY_KEYS = ["* {x}:y", "'; FLUSHALL", "k" * 255, "[[", "%00"]
TOOL_CALL_IDS = ["*", "{x}:y", "a:1", "]]", "'--", "%s", "t" * 128]
META_KEYS = ["a:b", "{x}", "*", "m:", "x:", "\u0000", "s:sess_", "ключ", "k" * 128]
CASE_IDS = ["a:b:c", "..", "_x_", "fms:x", "c" * 128]


def _h(user_id: str, **extra: str) -> dict[str, Any]:
    # UTF-8 bytes, exactly as a gateway would put a non-ASCII id on the wire.
    return {"X-User-ID": user_id.encode("utf-8"), **extra}


async def _hostile_traffic(client: httpx.AsyncClient, user_id: str) -> list[str]:
    h = _h(user_id)
    metadata = {key: {key: [key]} for key in META_KEYS}
    sids = []
    for i, client_id in enumerate(CLIENT_IDS):
        headers = {
            **h,
            "Idempotency-Key": f"{IDEMPOTENCY_KEYS[i % len(IDEMPOTENCY_KEYS)][:250]}#{i}",
        }
        body = {"title": user_id[:200], "client_id": client_id, "metadata": metadata}
        response = await client.post(API, json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == user_id
        sids.append(response.json()["session_id"])
    sid = sids[0]
    for key in IDEMPOTENCY_KEYS:
        message = {"role": "user", "content": f"{user_id} {key}", "metadata": metadata}
        response = await client.post(
            f"{API}/{sid}/messages", json=message, headers={**h, "Idempotency-Key": key}
        )
        assert response.status_code == 201, response.text
    response = await client.patch(
        f"{API}/{sid}", json={"context": metadata, "metadata": {META_KEYS[0]: None}}, headers=h
    )
    assert response.status_code == 200, response.text
    calls = [{"id": c, "name": "f:x", "arguments": metadata} for c in TOOL_CALL_IDS]
    response = await client.post(
        f"{API}/{sid}/messages", json={"role": "assistant", "tool_calls": calls}, headers=h
    )
    assert response.status_code == 201, response.text
    for call in TOOL_CALL_IDS:
        result = {"role": "tool", "content": user_id, "tool_call_id": call}
        response = await client.post(f"{API}/{sid}/messages", json=result, headers=h)
        assert response.status_code == 201, response.text
    last = response.json()["message"]["message_id"]
    summary = {"content": user_id, "covers_through": last, "metadata": metadata}
    response = await client.post(
        f"{API}/{sid}/summaries",
        json=summary,
        headers={**h, "Idempotency-Key": IDEMPOTENCY_KEYS[0]},
    )
    assert response.status_code == 201, response.text
    response = await client.get(f"{API}/{sid}/window?max_tokens=100", headers=h)
    assert response.json()["summary"]["content"] == user_id
    for case_id in CASE_IDS:
        response = await client.post(f"{API}/{sid}/cases", json={"case_id": case_id}, headers=h)
        assert response.status_code == 200, response.text
    await client.delete(f"{API}/{sid}/cases/{urllib.parse.quote(CASE_IDS[0])}", headers=h)
    search = {"metadata": {META_KEYS[1]: {META_KEYS[1]: [META_KEYS[1]]}}}
    response = await client.post(f"{API}/search", json=search, headers=h)
    assert response.status_code == 200, response.text
    assert response.json()["total"] == len(CLIENT_IDS)
    await client.post(f"{API}/{sids[1]}/archive", headers=h)
    await client.post(f"{API}/cleanup", headers=h)
    return sids


async def test_every_key_is_under_its_users_tag(make_client: ClientFactory, redis: Redis) -> None:
    await redis.script_flush()
    owned: dict[str, list[str]] = {}
    async with make_client(rate_limit_per_minute=10_000) as client:
        for user_id in HOSTILE_USERS:
            owned[user_id] = await _hostile_traffic(client, user_id)
        # Each user sees exactly their own sessions.
        for user_id, sids in owned.items():
            listed = await client.get(f"{API}?limit=100&include_archived=true", headers=_h(user_id))
            assert sorted(s["session_id"] for s in listed.json()["sessions"]) == sorted(sids)

    keys = [key async for key in redis.scan_iter(match="*", count=1000)]
    assert keys
    bases = {KEYS.base(u): u for u in HOSTILE_USERS}
    seen_users = set()
    for key in keys:
        split = split_key(key)
        assert split, key
        owner, suffix = split
        assert owner in HOSTILE_USERS, key
        assert key.startswith(KEYS.base(owner))
        assert bases[key[: len(KEYS.base(owner))]] == owner
        assert KEY_SUFFIX.fullmatch(suffix), key
        sid = re.search(r"sess_[0-9a-f]{32}", suffix)
        if sid:
            assert sid.group(0) in owned[owner], key
        seen_users.add(owner)
    assert seen_users == set(HOSTILE_USERS)

    # No user input was ever compiled into Lua: the script cache holds only the fixed scripts.
    memory = await redis.info("memory")
    shipped = list(resources.files("session_service.store").joinpath("lua").iterdir())
    assert 0 < int(memory["number_of_cached_scripts"]) <= len(shipped)


async def test_hostile_user_cannot_reach_others(client: httpx.AsyncClient) -> None:
    victim = await client.post(API, json={"title": "secret"}, headers=user("a"))
    sid = victim.json()["session_id"]
    for attacker in ("a*", "*", "?", "[a]", "A", "a ", " a", "a\u200b", "YQ", "{YQ}"):
        h = _h(attacker)
        assert (await client.get(f"{API}/{sid}", headers=h)).status_code == 404
        listed = await client.get(API, headers=h)
        assert listed.json()["total"] == 0
        search = await client.post(f"{API}/search", json={"query": "secret"}, headers=h)
        assert search.json()["total"] == 0
        message = {"role": "user", "content": "x"}
        response = await client.post(f"{API}/{sid}/messages", json=message, headers=h)
        assert response.status_code == 404
        assert (await client.delete(f"{API}/{sid}", headers=h)).status_code == 404
    assert (await client.get(f"{API}/{sid}", headers=user("a"))).json()["message_count"] == 0
