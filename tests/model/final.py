"""The final state, read once the clients and faults have stopped: through the API (every
session of every user, whole) and by a walk of the keyspace on every primary."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.helpers import API


@dataclass
class FinalSession:
    body: dict[str, Any]
    etag: str | None
    messages: list[dict[str, Any]]
    messages_etag: str | None
    summaries: list[dict[str, Any]]
    stats: dict[str, Any]
    cases: list[str]


@dataclass
class KeyInfo:
    key: str
    type: str
    pttl: int
    members: list[str] = field(default_factory=list)  # zset members / hash fields
    value: str | None = None  # strings


@dataclass
class FinalState:
    at: float  # monotonic: after every operation ended
    sessions: dict[str, dict[str, FinalSession]]  # user -> sid -> session
    statistics: dict[str, dict[str, Any]]
    keys: list[KeyInfo]
    absent: dict[str, set[str]] = field(default_factory=dict)  # sids that answered 404
    short_ttl_seconds: float = 0.0  # DEFAULT_SESSION_TTL of the run


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _get(client: httpx.AsyncClient, path: str, user: str, **params: Any) -> httpx.Response:
    """A read that must answer: the faults are off, but a loaded machine may still 503."""
    deadline = time.monotonic() + 60
    while True:
        response = await client.get(path, params=params or None, headers={"X-User-ID": user})
        if response.status_code < 500 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def _post(client: httpx.AsyncClient, path: str, user: str, body: Any) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        response = await client.post(path, json=body, headers={"X-User-ID": user})
        if response.status_code < 500 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def wait_out_short_sessions(
    client: httpx.AsyncClient, users: dict[str, set[str]], limit: float = 30.0
) -> None:
    """Sleep past the deadline of every short-lived session still live, then prune the
    indexes, so the final state holds no session that could expire while it is read."""
    latest = 0.0
    for user, sids in users.items():
        for sid in sids:
            response = await _get(client, f"{API}/{sid}", user)
            if response.status_code == 200 and response.json().get("expires_at"):
                expires = epoch(response.json()["expires_at"])
                if expires - time.time() < limit:
                    latest = max(latest, expires)
    if latest:
        await asyncio.sleep(max(0.0, latest + 0.3 - time.time()))
    for user in users:
        await _post(client, f"{API}/cleanup", user, None)


async def read_final(
    client: httpx.AsyncClient, users: dict[str, set[str]], primaries: list[str]
) -> FinalState:
    sessions: dict[str, dict[str, FinalSession]] = {}
    statistics: dict[str, dict[str, Any]] = {}
    absent: dict[str, set[str]] = {}
    for user, known in users.items():
        listed = await _walk_all(client, user)
        sessions[user] = {}
        absent[user] = set()
        for sid in sorted(known | listed):
            read = await read_session(client, user, sid)
            if read is None:
                absent[user].add(sid)
            else:
                sessions[user][sid] = read
        statistics[user] = (await _get(client, f"{API}/statistics", user)).json()
    keys = await walk_keys(primaries)
    return FinalState(time.monotonic(), sessions, statistics, keys, absent)


async def _walk_all(client: httpx.AsyncClient, user: str) -> set[str]:
    found: set[str] = set()
    body: dict[str, Any] = {"include_archived": True, "limit": 100}
    while True:
        response = await _post(client, f"{API}/search", user, body)
        page = response.json()
        found |= {s["session_id"] for s in page["sessions"]}
        if not page.get("next_cursor"):
            return found
        body["cursor"] = page["next_cursor"]


async def read_session(client: httpx.AsyncClient, user: str, sid: str) -> FinalSession | None:
    got = await _get(client, f"{API}/{sid}", user)
    if got.status_code == 404:
        return None
    assert got.status_code == 200, got.text
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    etag = None
    while True:
        page_response = await _get(client, f"{API}/{sid}/messages", user, **params)
        assert page_response.status_code == 200, page_response.text
        etag = page_response.headers.get("etag")
        page = page_response.json()
        messages += page["messages"]
        if not page["has_more"]:
            break
        params["after"] = page["next_cursor"]
    summaries: list[dict[str, Any]] = []
    sparams: dict[str, Any] = {"limit": 100}
    while True:
        response = await _get(client, f"{API}/{sid}/summaries", user, **sparams)
        assert response.status_code == 200, response.text
        page = response.json()
        summaries += page["summaries"]
        if not page["has_more"]:
            break
        sparams["before"] = page["next_cursor"]
    stats = (await _get(client, f"{API}/{sid}/stats", user)).json()
    cases = (await _get(client, f"{API}/{sid}/cases", user)).json()
    return FinalSession(
        got.json(), got.headers.get("etag"), messages, etag, summaries[::-1], stats,
        sorted(c["case_id"] for c in cases.get("cases", [])),
    )  # fmt: skip


async def walk_keys(primaries: list[str]) -> list[KeyInfo]:
    """Every key on every primary, with its type, TTL and members (small in these runs)."""
    out: list[KeyInfo] = []
    for url in primaries:
        async with Redis.from_url(url, decode_responses=True) as redis:
            async for key in redis.scan_iter(match="*", count=1000):
                kind = await redis.type(key)
                info = KeyInfo(key, kind, int(await redis.pttl(key)))
                if kind == "zset":
                    info.members = list(await redis.zrange(key, 0, -1))
                elif kind == "hash":
                    info.members = list(await redis.hkeys(key))
                elif kind == "string":
                    info.value = await redis.get(key)
                out.append(info)
    return out
