"""A copy dropped before it is published is freed off Redis' main thread.

A fork (or a staged rewind) builds its copy under a staging id. When the publishing
script refuses it (the user reached the session limit meanwhile, the source went or
was rewound, an If-Match no longer holds) the script drops the copy, and an erase
sweeps the copy of a session it dropped. At the largest documented size such a copy
holds 100,000 messages and a tool-call hash of as many entries: freed on the main
thread, that hash alone blocks the server for 50-140 ms (measured with DEL in a
script on this machine), ten times the bound on a script.

Redis 7 frees a key deleted with DEL on the main thread (its default is
`lazyfree-lazy-user-del no`; Valkey 8 defaults to yes), so the server is set as
Redis 7 ships for these tests. What they check is exact, not a timing: the server's
own count of objects freed in the background (INFO memory `lazyfreed_objects`)
grows by the copy's large keys. A copy of a few thousand entries is enough: Redis
frees a key in the background by the same rule whatever its size beyond 64 elements.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API

KEYS = Keys("fms")
ADMIN = user("root", **{"X-User-Roles": '["admin"]'})
CALLS = 2_000


@pytest.fixture
async def redis7_frees(redis: Redis) -> AsyncIterator[None]:
    """The server frees DEL's keys as Redis 7 does by default: on the main thread."""
    before = (await redis.config_get("lazyfree-lazy-user-del"))["lazyfree-lazy-user-del"]
    await redis.config_set("lazyfree-lazy-user-del", "no")
    yield
    await redis.config_set("lazyfree-lazy-user-del", before)


async def _lazyfreed(redis: Redis) -> int:
    return int((await redis.info("memory"))["lazyfreed_objects"])


#: How long the background thread may take to count what it freed on a busy machine.
LAZYFREE_PATIENCE = 30.0


async def _lazyfreed_reaches(redis: Redis, target: int) -> int:
    """The counter once it reaches `target`, or its value at the deadline. The background
    thread counts an object when it has freed it, which a busy machine delays."""
    deadline = time.monotonic() + LAZYFREE_PATIENCE
    # A server counter, polled: no event to wait on.
    while (count := await _lazyfreed(redis)) < target and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return count


async def _seed_tool_calls(client: httpx.AsyncClient, redis: Redis, count: int) -> str:
    """A conversation of `count` assistant messages, each making one tool call, written
    straight in the store's layout (so a copy of it builds a tool-call hash of `count`)."""
    sid = (await create_session(client, title="tools"))["session_id"]
    key, tools = KEYS.messages("u1", sid), KEYS.tool_calls("u1", sid)
    now = int(time.time() * 1000)
    pipe = redis.pipeline(transaction=False)
    for n in range(1, count + 1):
        call = f'[{{"id":"call_{n}","type":"function","function":{{"name":"f"}}}}]'
        fields = {"r": "assistant", "c": "", "t": now, "m": "", "k": 3, "e": 0, "tc": call}
        pipe.xadd(key, fields, id=f"0-{n}")  # type: ignore[arg-type]
        pipe.hset(tools, f"call_{n}", str(n))
    await pipe.execute()
    await redis.hset(
        KEYS.session("u1", sid),
        mapping={
            "mc": count, "li": count, "st": "in_progress", "fm": now, "lm": now,
            "tk": 3 * count, "na": count, "ka": 3 * count,
        },
    )  # fmt: skip
    return sid


class HoldBeforePublish:
    """The real fork script, held before it runs until `opened` (`reached` once held)."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.reached, self.opened = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.script, name)

    async def __call__(self, *args: Any) -> Any:
        self.reached.set()
        await self.opened.wait()
        return await self.script(*args)


async def _copied(
    client: httpx.AsyncClient, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> tuple[HoldBeforePublish, asyncio.Future[httpx.Response]]:
    """A fork whose copy is built and not yet published."""
    scripts = client.app.state.store.scripts  # type: ignore[attr-defined]
    sid = await _seed_tool_calls(client, redis, CALLS)
    held = HoldBeforePublish(scripts.fork)
    monkeypatch.setattr(scripts, "fork", held)
    forking = asyncio.ensure_future(client.post(f"{API}/{sid}/fork", headers=user()))
    async with asyncio.timeout(120):
        await held.reached.wait()
    return held, forking


async def test_a_fork_refused_after_its_copy_frees_the_copy_in_the_background(
    make_client: ClientFactory, redis: Redis, redis7_frees: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_client(max_sessions_per_user=2) as client:
        held, forking = await _copied(client, redis, monkeypatch)
        await create_session(client)  # the user's last place goes meanwhile
        before = await _lazyfreed(redis)
        held.opened.set()
        refused = await forking
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "session_limit_reached"
        freed = await _lazyfreed_reaches(redis, before + 1)
        assert freed > before, "the copy was freed on the main thread"
        assert (await client.get(API, headers=user())).json()["total"] == 2


async def test_an_erase_sweeps_a_copy_in_flight_in_the_background(
    make_client: ClientFactory, redis: Redis, redis7_frees: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_client() as client:
        held, forking = await _copied(client, redis, monkeypatch)
        before = await _lazyfreed(redis)
        erased = await client.delete("/api/v1/users/u1/sessions", headers=ADMIN)
        assert erased.status_code == 200, erased.text
        assert erased.json()["deleted_sessions"] == 1
        # The source's keys (an UNLINK already) and the swept copy's.
        freed = await _lazyfreed_reaches(redis, before + 2)
        assert freed >= before + 2, "the copy was freed on the main thread"
        held.opened.set()
        assert (await forking).status_code == 404
        assert [k async for k in redis.scan_iter(match=KEYS.user_pattern("u1"))] == []
