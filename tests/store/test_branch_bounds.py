"""Fork and rewind at the largest documented size (100,000 messages) never stall Redis,
and a source deleted or rewound while it is being copied leaves nothing behind.

The stall check is the issue's: a separate process sends PING over its own raw
connection during the operation and keeps the slowest round trip. Machine noise
is measured the same way, for as long, without the operation, and is the margin
(tests never assume a machine speed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.branches import SLICE_MAX
from session_service.store.keys import Keys
from tests.conftest import create_session, user
from tests.helpers import API
from tests.store.stalls import stall_free

KEYS = Keys("fms")
LARGEST = 100_000


async def _seed(client: httpx.AsyncClient, redis: Redis, count: int) -> str:
    """A conversation of `count` messages written straight in the store's layout, pipelined."""
    sid = (await create_session(client, title="big"))["session_id"]
    key = KEYS.messages("u1", sid)
    now = int(time.time() * 1000)
    for start in range(1, count + 1, 5000):
        pipe = redis.pipeline(transaction=False)
        for n in range(start, min(count, start + 4999) + 1):
            role = "user" if n % 2 else "assistant"
            pipe.xadd(
                key, {"r": role, "c": f"m{n}", "t": now, "m": "", "k": 3, "e": 0}, id=f"0-{n}"
            )
        await pipe.execute()
    half = count // 2
    await redis.hset(
        KEYS.session("u1", sid),
        mapping={
            "mc": count, "li": count, "st": "in_progress", "fm": now, "lm": now, "tk": 3 * count,
            "nu": count - half, "na": half, "ku": 3 * (count - half), "ka": 3 * half,
        },
    )  # fmt: skip
    return sid


async def _evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def _messages_at_ends(client: httpx.AsyncClient, sid: str) -> list[Any]:
    first = await client.get(
        f"{API}/{sid}/messages", params={"order": "asc", "limit": 3}, headers=user()
    )
    last = await client.get(
        f"{API}/{sid}/messages", params={"order": "desc", "limit": 3}, headers=user()
    )
    return [first.json()["messages"], last.json()["messages"], last.json()["total"]]


@pytest.mark.slow
async def test_a_fork_of_100000_messages_never_stalls_redis(
    client: httpx.AsyncClient, redis: Redis, redis_url: str
) -> None:
    async def fork(sid: str) -> tuple[httpx.Response, int]:
        calls = await _evalsha_calls(redis)
        forked = await client.post(f"{API}/{sid}/fork", headers=user())
        return forked, await _evalsha_calls(redis) - calls

    sid, (forked, scripts) = await stall_free(
        redis, redis_url, lambda: _seed(client, redis, LARGEST), fork
    )
    assert forked.status_code == 201, forked.text
    assert scripts >= LARGEST // SLICE_MAX, "copied in slices"
    fid = forked.json()["session_id"]
    assert forked.json()["message_count"] == LARGEST
    assert await _messages_at_ends(client, fid) == await _messages_at_ends(client, sid)
    stats = (await client.get(f"{API}/{fid}/stats", headers=user())).json()
    assert (stats["total_tokens"], stats["user_message_count"]) == (3 * LARGEST, LARGEST // 2)
    full = await client.post(
        f"{API}/{fid}/messages", json={"role": "user", "content": "next"}, headers=user()
    )
    assert full.json()["code"] == "session_full", "the fork is as full as its source"
    cut = {"to_message_id": "msg_0000099999"}
    assert (await client.post(f"{API}/{fid}/rewind", json=cut, headers=user())).json()[
        "removed"
    ] == 1
    appended = await client.post(
        f"{API}/{fid}/messages", json={"role": "user", "content": "next"}, headers=user()
    )
    assert appended.json()["message"]["message_id"] == "msg_0000100001"
    assert await redis.xlen(KEYS.messages("u1", sid)) == LARGEST, "the source is untouched"


@pytest.mark.slow
async def test_a_rewind_of_100000_messages_never_stalls_redis(
    client: httpx.AsyncClient, redis: Redis, redis_url: str
) -> None:
    for to, kept in (("msg_0000000001", 1), ("msg_0000050000", LARGEST // 2)):

        async def rewind(sid: str, to: str = to) -> httpx.Response:
            body = {"to_message_id": to}
            return await client.post(f"{API}/{sid}/rewind", json=body, headers=user())

        sid, rewound = await stall_free(
            redis, redis_url, lambda: _seed(client, redis, LARGEST), rewind
        )
        assert rewound.json() == {"removed": LARGEST - kept, "last_message_id": to}
        appended = await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": "next"}, headers=user()
        )
        assert appended.json()["message"]["message_id"] == "msg_0000100001", "ids continue"
        assert appended.json()["total_messages"] == kept + 1
        assert await redis.xlen(KEYS.messages("u1", sid)) == kept + 1
        stats = (await client.get(f"{API}/{sid}/stats", headers=user())).json()
        assert stats["total_tokens"] == 3 * kept + appended.json()["message"]["token_count"]


class _After:
    """The real copy script, with `action` run once after its `nth` call: a deterministic
    interleaving of a concurrent request with a copy in progress (Redis is real)."""

    def __init__(self, script: Any, nth: int, action: Callable[[], Awaitable[Any]]) -> None:
        self.script, self.nth, self.action, self.calls = script, nth, action, 0
        self.name, self.sha, self.source = script.name, script.sha, script.source

    async def __call__(self, client: Any, keys: list[str], args: list[str | int]) -> Any:
        reply = await self.script(client, keys, args)
        self.calls += 1
        if self.calls == self.nth:
            await self.action()
        return reply


async def _with_hook(
    client: httpx.AsyncClient,
    action: Callable[[], Awaitable[Any]],
    request: Callable[[], Awaitable[httpx.Response]],
) -> httpx.Response:
    scripts = client.app.state.store.scripts  # type: ignore[attr-defined]
    real = scripts.copy
    scripts.copy = _After(real, 2, action)
    try:
        return await request()
    finally:
        scripts.copy = real


async def _user_keys(redis: Redis) -> list[str]:
    return [key async for key in redis.scan_iter(match=KEYS.user_pattern("u1"), count=1000)]


async def test_a_source_deleted_mid_copy_ends_the_fork_and_the_rewind_with_nothing_left(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    for operation in ("fork", "rewind"):
        sid = await _seed(client, redis, 5000)
        body = {"to_message_id": "msg_0000000100"} if operation == "rewind" else None
        response = await _with_hook(
            client,
            lambda sid=sid: client.delete(f"{API}/{sid}", headers=user()),
            lambda sid=sid, body=body, operation=operation: client.post(
                f"{API}/{sid}/{operation}", json=body, headers=user()
            ),
        )
        assert response.status_code == 404, response.text
        leftovers = [key for key in await _user_keys(redis) if ":sess_" in key]
        assert leftovers == [], f"{operation}: {leftovers}"
        assert (await client.get(API, headers=user())).json()["total"] == 0


async def test_a_source_rewound_mid_copy_restarts_the_fork_from_what_remains(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = await _seed(client, redis, 5000)
    forked = await _with_hook(
        client,
        lambda: client.post(
            f"{API}/{sid}/rewind", json={"to_message_id": "msg_0000000010"}, headers=user()
        ),
        lambda: client.post(f"{API}/{sid}/fork", headers=user()),
    )
    assert forked.status_code == 201, forked.text
    assert forked.json()["message_count"] == 10
    assert forked.json()["forked_from"] == {"session_id": sid, "message_id": "msg_0000000010"}
    fid = forked.json()["session_id"]
    assert await redis.xlen(KEYS.messages("u1", fid)) == 10
    live = {sid, fid}
    strays = [
        k for k in await _user_keys(redis) if ":sess_" in k and k.rsplit(":", 1)[1] not in live
    ]
    assert strays == [], "the abandoned first copy was dropped"
