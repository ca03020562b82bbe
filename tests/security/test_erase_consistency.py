"""Erase and delete-all against what races them (issue 20, defects 4, 5 and 6).

- Delete-all removes every session that existed before it was sent, however many
  creates race it; only sessions created meanwhile may remain.
- An erase interrupted half-way leaves a consistent user: every session still
  readable is listed, counted against the session limit and found by delete-all.
- A fork published while an erase runs does not outlive the erase with the
  erased content.
- The erase's stray sweep keeps the copy in progress (fork or staged rewind) of a
  session it spares, and deletes the copy of a session it drops.

The erase is paused or interrupted between two of its own script calls: the
script runs for real on the real server; the pause only holds the caller, as a
slow or dying process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store import account, branches, erasure
from session_service.store.keys import COPY_OWNER, Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, next_millisecond

KEYS = Keys("fms")
ADMIN = user("root", **{"X-User-Roles": '["admin"]'})


def erase_url(user_id: str) -> str:
    return f"/api/v1/users/{urllib.parse.quote(user_id, safe='')}/sessions"


class Held:
    """A store script whose caller, after each run, awaits `after(n)` (n: runs so far)."""

    def __init__(self, script: Any, after: Callable[[int], Awaitable[None]]) -> None:
        self.script = script
        self.after = after
        self.runs = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.script, name)

    async def __call__(self, *args: Any) -> Any:
        reply = await self.script(*args)
        self.runs += 1
        await self.after(self.runs)
        return reply


async def _erase_one_slice(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, user_id: str
) -> None:
    """Erase `user_id` in a process that dies after the erase's first slice; then undo
    `monkeypatch` (every patch of the test so far)."""
    store = client.app.state.store  # type: ignore[attr-defined]
    sliced = asyncio.Event()

    async def die_after_one_slice(runs: int) -> None:
        sliced.set()
        await asyncio.Event().wait()  # the erasing process stops here for good

    monkeypatch.setattr(store.scripts, "erase", Held(store.scripts.erase, die_after_one_slice))
    erase = asyncio.ensure_future(client.delete(erase_url(user_id), headers=ADMIN))
    await sliced.wait()
    erase.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await erase
    monkeypatch.undo()


async def _status(client: httpx.AsyncClient, user_id: str, sid: str) -> int:
    return (await client.get(f"{API}/{sid}", headers=user(user_id))).status_code


# ---- delete-all --------------------------------------------------------------------


async def test_delete_all_racing_creates_removes_every_session_from_before(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(account, "DELETE_SLICE", 5)  # many slices for the creates to race
    async with make_client(max_sessions_per_user=10_000) as client:
        h = user("busy")
        before = []
        for i in range(60):
            sid = (await create_session(client, "busy", title=f"old {i}"))["session_id"]
            before.append(sid)
            if i % 2:  # archived ones are kept forever: the last by deadline
                assert (await client.post(f"{API}/{sid}/archive", headers=h)).status_code == 200
        done = asyncio.Event()
        created: list[str] = []

        async def creator() -> None:
            while not done.is_set():
                response = await client.post(API, json={"title": "new"}, headers=h)
                assert response.status_code == 201, response.text
                created.append(response.json()["session_id"])

        async def delete_all() -> httpx.Response:
            await asyncio.sleep(0)
            try:
                return await client.delete(API, headers=h)
            finally:
                done.set()

        *_, response = await asyncio.gather(*(creator() for _ in range(3)), delete_all())
        assert response.status_code == 200, response.text
        assert len(created) > 3, "no create raced the delete-all"
        survivors = [sid for sid in before if await _status(client, "busy", sid) != 404]
        assert survivors == [], f"{len(survivors)} sessions from before the delete-all survived"
        listed = await client.get(API, params={"include_archived": "true"}, headers=h)
        assert {s["session_id"] for s in listed.json()["sessions"]} <= set(created)
        assert response.json()["deleted"] >= len(before)


# ---- an interrupted erase ----------------------------------------------------------


async def test_an_interrupted_erase_leaves_every_operation_one_consistent_view(
    make_client: ClientFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "ERASE_SLICE", 4)
    limit = 240
    async with make_client(max_sessions_per_user=limit) as client:
        h = user("halted")
        # More than a small zset holds, so one slice of the erase is a part of them.
        before = [(await create_session(client, "halted"))["session_id"] for _ in range(200)]
        await _erase_one_slice(client, monkeypatch, "halted")

        readable = [sid for sid in before if await _status(client, "halted", sid) == 200]
        assert 0 < len(readable) < len(before), "not one slice"
        # Listed and counted as readable.
        listed = await client.get(API, params={"limit": 100}, headers=h)
        assert listed.json()["total"] == len(readable)
        assert {s["session_id"] for s in listed.json()["sessions"]} <= set(readable)
        stats = (await client.get(f"{API}/statistics", headers=h)).json()
        assert stats["total_sessions"] == len(readable)
        # Counted against the session limit: exactly `limit - readable` more fit.
        room = limit - len(readable)
        for _ in range(room):
            assert (await client.post(API, json={}, headers=h)).status_code == 201
        refused = await client.post(API, json={}, headers=h)
        assert refused.status_code == 409, f"{len(readable)} readable sessions escaped the limit"
        assert refused.json()["code"] == "session_limit_reached"
        # Found by the user's own delete-all.
        deleted = await client.delete(API, headers=h)
        assert deleted.json()["deleted"] == limit
        assert [sid for sid in readable if await _status(client, "halted", sid) != 404] == []
        # And by the next erase: the user is left with no key at all.
        assert (await client.delete(erase_url("halted"), headers=ADMIN)).status_code == 200
        assert [k async for k in redis.scan_iter(match=KEYS.user_pattern("halted"))] == []


# ---- a fork published during an erase ----------------------------------------------


async def test_a_fork_published_while_an_erase_runs_does_not_outlive_it(
    make_client: ClientFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "ERASE_SLICE", 10)
    async with make_client(max_sessions_per_user=1_000) as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        h = user("forker")
        # Enough sessions that the erase takes many slices; the source is created
        # last, with the longest timeout, so no order of the erase reaches it first.
        others = [(await create_session(client, "forker"))["session_id"] for _ in range(200)]
        source = (await create_session(client, "forker", timeout_minutes=1440))["session_id"]
        for i in range(6):
            message = {"role": "user", "content": f"secret {i}"}
            response = await client.post(f"{API}/{source}/messages", json=message, headers=h)
            assert response.status_code == 201

        copied = asyncio.Event()
        publish = asyncio.Event()

        async def before_publishing(runs: int) -> None:
            return None

        class HeldFork(Held):
            async def __call__(self, *args: Any) -> Any:
                copied.set()
                await publish.wait()  # published while the erase runs
                return await self.script(*args)

        source_alive_at_publish: list[bool] = []
        forked: list[httpx.Response] = []

        async def after_a_slice(runs: int) -> None:
            if runs == 1:
                source_alive_at_publish.append(await _status(client, "forker", source) == 200)
                publish.set()
                await fork_done.wait()

        fork_done = asyncio.Event()

        async def fork() -> None:
            try:
                forked.append(await client.post(f"{API}/{source}/fork", json={}, headers=h))
            finally:
                fork_done.set()

        monkeypatch.setattr(store.scripts, "fork", HeldFork(store.scripts.fork, before_publishing))
        monkeypatch.setattr(store.scripts, "erase", Held(store.scripts.erase, after_a_slice))
        forking = asyncio.ensure_future(fork())
        await copied.wait()
        erased = await client.delete(erase_url("forker"), headers=ADMIN)
        await forking
        assert erased.status_code == 200, erased.text
        # Whether or not the erase had reached the source when the fork published.
        print("source alive when the fork published:", source_alive_at_publish)
        assert forked[0].status_code in (201, 404), forked[0].text
        if forked[0].status_code == 201:
            fork_id = forked[0].json()["session_id"]
            assert await _status(client, "forker", fork_id) == 404, "the fork kept erased content"
        listed = await client.get(API, params={"limit": 100}, headers=h)
        assert listed.json()["sessions"] == []
        assert [sid for sid in others if await _status(client, "forker", sid) != 404] == []
        leftover = [k async for k in redis.scan_iter(match=KEYS.user_pattern("forker"))]
        contents = [await redis.xrange(k) for k in leftover if await redis.type(k) == "stream"]
        assert not [c for c in contents if "secret" in str(c)]


async def test_sessions_an_interrupted_erase_left_still_expire(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "ERASE_SLICE", 4)
    async with make_client(max_sessions_per_user=250, default_session_ttl=2) as client:
        h = user("fading")
        before = [await create_session(client, "fading") for _ in range(200)]
        await _erase_one_slice(client, monkeypatch, "fading")

        # Until the server's clock passes every deadline (GET never shows an expired one).
        for session in before:
            for _ in range(600):  # polls, each 0.2 s; the deadlines are 2 s away
                if await _status(client, "fading", session["session_id"]) == 404:
                    break
                await asyncio.sleep(0.2)
        listed = (await client.get(API, params={"include_archived": "true"}, headers=h)).json()
        assert (listed["total"], listed["sessions"]) == (0, [])
        assert (await client.get(f"{API}/statistics", headers=h)).json()["total_sessions"] == 0
        # Every expired one frees its place under the limit.
        for _ in range(250):
            assert (await client.post(API, json={}, headers=h)).status_code == 201


# ---- copies in progress when an erase sweeps its strays -----------------------------


class _Paused:
    """Hooks that hold a copy (fork or staged rewind) after its slices, and an erase
    before its stray sweep, until the test releases each."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.copied, self.publish, self.sweep = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.sliced = asyncio.Event()  # the erase's first slice ran: its cutoff is fixed
        copy, scan = branches._copy, store._scan

        async def after_a_slice(runs: int) -> None:
            self.sliced.set()

        self.copies = 0  # copies made: more than one means the publish had to start over

        async def copy_then_wait(*args: Any) -> Any:
            self.copies += 1
            result = await copy(*args)
            self.copied.set()
            await self.publish.wait()
            return result

        async def scan_when_told(pattern: str) -> Any:
            await self.sweep.wait()
            async for key in scan(pattern):
                yield key

        monkeypatch.setattr(branches, "_copy", copy_then_wait)
        monkeypatch.setattr(store, "_scan", scan_when_told)
        monkeypatch.setattr(store.scripts, "erase", Held(store.scripts.erase, after_a_slice))


async def _copy_owners(redis: Redis, user_id: str) -> dict[str, str]:
    """Staging id -> the session its copy belongs to, for every copy marker of a user."""
    prefix = KEYS.base(user_id) + COPY_OWNER
    return {
        key[len(prefix) :]: await redis.get(key)
        async for key in redis.scan_iter(match=prefix + "*")
    }


async def test_an_erase_spares_a_concurrent_fork_of_a_session_it_spares(
    make_client: ClientFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_client() as client:
        paused = _Paused(client.app.state.store, monkeypatch)  # type: ignore[attr-defined]
        h = user("spared")
        erase = asyncio.ensure_future(client.delete(erase_url("spared"), headers=ADMIN))
        await paused.sliced.wait()  # the erase fixed its cutoff, dropped nothing, waits to sweep
        # A session created in the cutoff's own millisecond is one the erase may drop;
        # this one is created after it (the cutoff is at most Redis's now, read here).
        await next_millisecond(redis)
        source = (await create_session(client, "spared"))["session_id"]
        for content in ("a", "b", "c"):
            message = {"role": "user", "content": content}
            response = await client.post(f"{API}/{source}/messages", json=message, headers=h)
            assert response.status_code == 201, response.text
        fork = asyncio.ensure_future(client.post(f"{API}/{source}/fork", json={}, headers=h))
        await paused.copied.wait()
        assert list((await _copy_owners(redis, "spared")).values()) == [source]
        paused.sweep.set()
        assert (await erase).status_code == 200
        paused.publish.set()
        forked = await fork
        assert forked.status_code == 201, forked.text
        fork_id = forked.json()["session_id"]
        page = await client.get(f"{API}/{fork_id}/messages", headers=h)
        assert [m["content"] for m in page.json()["messages"]] == ["a", "b", "c"]
        assert forked.json()["message_count"] == 3
        assert paused.copies == 1, "the sweep deleted the copy: the fork had to copy again"
        assert await _copy_owners(redis, "spared") == {}  # published: the marker is gone


async def test_an_erase_deletes_a_concurrent_rewinds_copy_of_a_session_it_drops(
    make_client: ClientFactory, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(branches, "INLINE_MAX", 1)  # the rewind below is staged
    async with make_client() as client:
        paused = _Paused(client.app.state.store, monkeypatch)  # type: ignore[attr-defined]
        h = user("dropped")
        sid = (await create_session(client, "dropped"))["session_id"]
        for content in ("secret 1", "secret 2", "secret 3", "secret 4"):
            message = {"role": "user", "content": content}
            response = await client.post(f"{API}/{sid}/messages", json=message, headers=h)
            assert response.status_code == 201, response.text
        body = {"to_message_id": "msg_0000000002"}
        rewind = asyncio.ensure_future(client.post(f"{API}/{sid}/rewind", json=body, headers=h))
        await paused.copied.wait()  # the kept part is staged under a staging id
        assert list((await _copy_owners(redis, "dropped")).values()) == [sid]
        paused.sweep.set()
        assert (await client.delete(erase_url("dropped"), headers=ADMIN)).status_code == 200
        # The copy held messages written before the erase: it went with its session.
        assert [k async for k in redis.scan_iter(match=KEYS.user_pattern("dropped"))] == []
        paused.publish.set()
        answered = await rewind
        assert answered.status_code == 404, answered.text
        assert [k async for k in redis.scan_iter(match=KEYS.user_pattern("dropped"))] == []
