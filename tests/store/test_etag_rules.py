"""Each ETag moves exactly when the state it covers changes, checked write by write.

The session's ETag covers what `GET /sessions/{id}` shows; the messages ETag what
`GET .../messages` and `GET .../summaries` show. Every writing operation of the API
runs in turn against a real server (and the refused, replayed and read-only ones
beside them); after each, an ETag that stayed put over a changed state would give
a client a 304 for a changed session or let an If-Match pass over a change, and one
that moved over an unchanged state would fail a conditional write for nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import create_session, user
from tests.helpers import API


@dataclass(frozen=True)
class Snapshot:
    session_etag: str
    session: Any
    messages_etag: str
    messages: Any


async def snapshot(client: httpx.AsyncClient, sid: str) -> Snapshot:
    session = await client.get(f"{API}/{sid}", headers=user())
    messages = await client.get(f"{API}/{sid}/messages", params={"limit": 500}, headers=user())
    summaries = await client.get(f"{API}/{sid}/summaries", headers=user())
    assert session.status_code == messages.status_code == summaries.status_code == 200
    return Snapshot(
        session.headers["etag"],
        session.json(),
        messages.headers["etag"],
        (messages.json(), summaries.json()),
    )


async def clock_past(redis: Redis, state: dict[str, Any]) -> None:
    """Wait (polling, with a deadline) until the server's clock is past the session's
    latest timestamp, so that a write that touches the session shows a new one."""
    latest = max(
        datetime.fromisoformat(state[name].replace("Z", "+00:00")).timestamp() * 1000
        for name in ("updated_at", "last_activity_at")
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seconds, micros = await redis.time()
        if seconds * 1000 + micros // 1000 > latest:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the server clock did not move")


Op = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


def call(method: str, suffix: str, body: Any = None, **headers: str) -> Op:
    async def run(client: httpx.AsyncClient, sid: str) -> httpx.Response:
        return await client.request(
            method, f"{API}/{sid}{suffix}", json=body, headers=user(**headers)
        )

    return run


def stale(method: str, suffix: str, body: Any = None) -> Op:
    return call(method, suffix, body, **{"If-Match": '"0.s0"'})


MESSAGE = {"role": "user", "content": "the disk is full again"}
TURN = {"messages": [MESSAGE, {"role": "assistant", "content": "clean /var/log"}]}
#: (name, operation, expected status): every write the API offers, in an order that
#: keeps each one possible, with refused, replayed and read-only requests among them.
OPERATIONS: list[tuple[str, Op, int]] = [
    ("patch title", call("PATCH", "", {"title": "t1"}), 200),
    ("patch same title", call("PATCH", "", {"title": "t1"}), 200),
    ("put description", call("PUT", "", {"description": "d"}), 200),
    ("patch metadata", call("PATCH", "", {"metadata": {"a": 1}}), 200),
    ("patch context", call("PATCH", "", {"context": {"c": [1]}}), 200),
    ("patch timeout", call("PATCH", "", {"timeout_minutes": 90}), 200),
    ("patch invalid", call("PATCH", "", {"title": 3}), 422),
    ("patch stale if-match", stale("PATCH", "", {"title": "t2"}), 412),
    ("patch if-none-match *", call("PATCH", "", {"title": "t2"}, **{"If-None-Match": "*"}), 412),
    ("heartbeat", call("POST", "/heartbeat"), 200),
    ("clear context", call("POST", "/cleanup"), 200),
    ("append", call("POST", "/messages", MESSAGE, **{"Idempotency-Key": "k1"}), 201),
    ("append replay", call("POST", "/messages", MESSAGE, **{"Idempotency-Key": "k1"}), 201),
    (
        "append reused key",
        call("POST", "/messages", {**MESSAGE, "content": "x"}, **{"Idempotency-Key": "k1"}),
        422,
    ),
    ("append stale if-match", stale("POST", "/messages", MESSAGE), 412),
    ("append invalid", call("POST", "/messages", {"role": "robot", "content": "x"}), 422),
    ("append 2", call("POST", "/messages", {"role": "assistant", "content": "df -h"}), 201),
    ("append 3", call("POST", "/messages", {"role": "user", "content": "/var is 100%"}), 201),
    ("batch", call("POST", "/messages/batch", TURN, **{"Idempotency-Key": "b1"}), 201),
    ("batch replay", call("POST", "/messages/batch", TURN, **{"Idempotency-Key": "b1"}), 201),
    ("batch stale if-match", stale("POST", "/messages/batch", TURN), 412),
    ("batch invalid", call("POST", "/messages/batch", {"messages": [MESSAGE, {"role": "x"}]}), 422),
    (
        "summary",
        call("POST", "/summaries", {"content": "s", "covers_through": "msg_0000000001"}),
        201,
    ),
    (
        "summary stale if-match",
        stale("POST", "/summaries", {"content": "s", "covers_through": "msg_0000000002"}),
        412,
    ),
    ("fork", call("POST", "/fork", {}), 201),
    ("link case", call("POST", "/cases", {"case_id": "c1"}), 200),
    ("unlink case", call("DELETE", "/cases/c1"), 204),
    ("rewind", call("POST", "/rewind", {"to_message_id": "msg_0000000002"}), 200),
    ("rewind stale if-match", stale("POST", "/rewind", {"to_message_id": "msg_0000000001"}), 412),
    ("get", call("GET", ""), 200),
    ("head", call("HEAD", ""), 200),
    ("head messages", call("HEAD", "/messages"), 200),
    ("window", call("GET", "/window?max_tokens=1000"), 200),
    ("export", call("GET", "/export"), 200),
    ("stats", call("GET", "/stats"), 200),
    ("recovery info", call("GET", "/recovery-info"), 200),
    ("patch status", call("PATCH", "", {"status": "completed"}), 200),
    ("patch same status", call("PATCH", "", {"status": "completed"}), 200),
    ("archive", call("POST", "/archive"), 200),
    ("patch archived, no change", call("PATCH", "", {"status": "archived"}), 200),
    ("patch archived", call("PATCH", "", {"title": "no"}), 409),
    ("append archived", call("POST", "/messages", MESSAGE), 409),
    ("restore", call("POST", "/restore"), 200),
    ("restore again", call("POST", "/restore"), 409),
]


async def test_each_write_moves_each_etag_iff_the_state_it_covers_changed(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = (await create_session(client, title="t0", metadata={"m": 1}))["session_id"]
    search = await client.post(f"{API}/search", json={"query": "t"}, headers=user())
    assert search.status_code == 200
    moved: dict[str, tuple[bool, bool]] = {}
    before = await snapshot(client, sid)

    for name, operation, status in OPERATIONS:
        await clock_past(redis, before.session)
        response = await operation(client, sid)
        assert response.status_code == status, (name, response.status_code, response.text[:200])
        after = await snapshot(client, sid)

        session_changed = after.session != before.session
        messages_changed = after.messages != before.messages
        assert (after.session_etag != before.session_etag) == session_changed, name
        assert (after.messages_etag != before.messages_etag) == messages_changed, name
        moved[name] = (session_changed, messages_changed)
        before = after

    # The run exercised both directions for both tags (it could have failed either way).
    assert moved["heartbeat"] == (True, False)
    assert moved["append"] == (True, True)
    assert moved["summary"][1] is True
    assert moved["append replay"] == moved["patch invalid"] == moved["get"] == (False, False)
    assert moved["batch"] == (True, True)
    assert moved["batch replay"] == moved["batch invalid"] == (False, False)


def _scripts() -> dict[str, str]:
    folder = resources.files("session_service.store").joinpath("lua")
    return {
        path.name.removesuffix(".lua"): path.read_text()
        for path in folder.iterdir()
        if path.name.endswith(".lua") and path.name != "lib.lua"
    }


@pytest.mark.parametrize("name", sorted(n for n, s in _scripts().items() if "if_match" in s))
def test_every_conditional_script_checks_the_precondition_before_it_writes(name: str) -> None:
    """The static half: a script that takes If-Match checks it before its first write."""
    source = re.sub(r"--[^\n]*", "", _scripts()[name])
    # A write command, or a lib.lua function that writes (the appends' shared steps).
    writes = re.compile(
        r"redis\.call\('(?:HSET|HINCRBY|HDEL|XADD|XDEL|ZADD|RENAME|UNLINK|DEL)'"
        r"|\b(?:store_message|write_tools|finish_append)\("
    )
    check = source.find("precondition(")
    first_write = writes.search(source)
    assert check >= 0, f"{name} takes If-Match but never checks it"
    if first_write is not None:
        assert check < first_write.start(), f"{name} writes before checking If-Match"
