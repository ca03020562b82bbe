"""Every write a watcher must see publishes a notification for its session.

The change feed's watchers are woken only by these (or by a resubscription): a
write that forgot to notify would leave watchers asleep until the next change.
Each write here runs through the API while a real subscription listens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys, encode_user
from tests.conftest import create_session, user

Write = Callable[[httpx.AsyncClient, str, list[str]], Awaitable[httpx.Response]]


@pytest.fixture
async def notifications(redis: Redis) -> AsyncIterator[asyncio.Queue[str]]:
    pubsub = redis.pubsub()
    await pubsub.subscribe(Keys("fms").feed_channel())
    received: asyncio.Queue[str] = asyncio.Queue()

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                await received.put(message["data"])

    task = asyncio.create_task(listen())
    yield received
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()


async def _post(client: httpx.AsyncClient, path: str, body: Any = None) -> httpx.Response:
    return await client.post(path, json=body if body is not None else {}, headers=user())


WRITES: dict[str, Write] = {
    "append": lambda c, s, m: _post(
        c, f"/api/v1/sessions/{s}/messages", {"role": "user", "content": "x"}
    ),
    "append batch": lambda c, s, m: _post(
        c,
        f"/api/v1/sessions/{s}/messages/batch",
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
    ),
    "update": lambda c, s, m: c.patch(f"/api/v1/sessions/{s}", json={"title": "t"}, headers=user()),
    "heartbeat": lambda c, s, m: _post(c, f"/api/v1/sessions/{s}/heartbeat"),
    "summary": lambda c, s, m: _post(
        c, f"/api/v1/sessions/{s}/summaries", {"content": "so far", "covers_through": m[0]}
    ),
    "rewind": lambda c, s, m: _post(c, f"/api/v1/sessions/{s}/rewind", {"to_message_id": m[0]}),
    "link case": lambda c, s, m: _post(c, f"/api/v1/sessions/{s}/cases", {"case_id": "case-1"}),
    "cleanup context": lambda c, s, m: _post(c, f"/api/v1/sessions/{s}/cleanup"),
    "archive": lambda c, s, m: _post(c, f"/api/v1/sessions/{s}/archive"),
    "delete": lambda c, s, m: c.delete(f"/api/v1/sessions/{s}", headers=user()),
}


@pytest.mark.parametrize("name", list(WRITES))
async def test_the_write_notifies_its_session(
    name: str, client: httpx.AsyncClient, notifications: asyncio.Queue[str], redis: Redis
) -> None:
    # Some context, so that clearing it changes something (a no-op notifies nothing).
    sid = (await create_session(client))["session_id"]
    context = await client.patch(
        f"/api/v1/sessions/{sid}", json={"context": {"step": 1}}, headers=user()
    )
    assert context.status_code == 200, context.text
    ids = []
    for content in ("a", "b"):
        appended = await _post(
            client, f"/api/v1/sessions/{sid}/messages", {"role": "user", "content": content}
        )
        ids.append(appended.json()["message"]["message_id"])
    seconds, micros = await redis.time()
    started = seconds * 1_000_000 + micros  # notifications carry Redis time in µs
    response = await WRITES[name](client, sid, ids)
    assert response.status_code < 300, response.text
    async with asyncio.timeout(30):
        while True:  # earlier writes' notifications may still be in flight: skip them
            tag, got_sid, kind, at = (await notifications.get()).split(" ")
            if int(at) >= started:
                break
    assert (tag, got_sid) == (encode_user("u1"), sid)
    assert kind == ("k" if name == "link case" else "w")
