"""The guarantees that depend on Redis hold on standalone, Sentinel and Cluster alike.

Each test runs three times (see `topology` in conftest); on Sentinel and Cluster
every write also waits for a replica, so the WAIT path runs too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.paging import all_messages
from tests.topology.conftest import Topology

pytestmark = pytest.mark.topology

#: User ids an attacker might pick to reach someone else's keys or slot.
HOSTILE_USERS = ["u1", "u1}", "{u1}", "u1:s:", "*", "u1*", "fms:{dTE}:", "ü1", "u 1", "a\\b"]

WRITERS = 16
MESSAGES_EACH = 10


async def _append(client: httpx.AsyncClient, sid: str, content: str, uid: str = "u1") -> Any:
    response = await client.post(
        f"/api/v1/sessions/{sid}/messages",
        json={"role": "user", "content": content},
        headers=user(uid),
    )
    assert response.status_code == 201, response.text
    return response.json()


def as_user(uid: str) -> dict[str, bytes]:
    """The gateway's header for any user id, sent as UTF-8."""
    return {"X-User-ID": uid.encode()}


async def test_every_user_sees_only_their_own_sessions(app: httpx.AsyncClient) -> None:
    owned: dict[str, str] = {}
    for uid in HOSTILE_USERS:
        created = await app.post("/api/v1/sessions", json={"title": uid}, headers=as_user(uid))
        assert created.status_code == 201, (uid, created.text)
        owned[uid] = created.json()["session_id"]

    for uid, sid in owned.items():
        listed = (await app.get("/api/v1/sessions", headers=as_user(uid))).json()
        assert [s["session_id"] for s in listed["sessions"]] == [sid]
        assert listed["sessions"][0]["user_id"] == uid
        for other, other_sid in owned.items():
            if other != uid:
                got = await app.get(f"/api/v1/sessions/{other_sid}", headers=as_user(uid))
                assert got.status_code == 404, (uid, other)


async def test_concurrent_appends_are_neither_lost_nor_duplicated(app: httpx.AsyncClient) -> None:
    sid = (await create_session(app))["session_id"]

    async def writer(w: int) -> list[str]:
        return [
            (await _append(app, sid, f"w{w}-m{m}"))["message"]["message_id"]
            for m in range(MESSAGES_EACH)
        ]

    ids = [mid for batch in await asyncio.gather(*map(writer, range(WRITERS))) for mid in batch]

    total = WRITERS * MESSAGES_EACH
    assert sorted(ids) == [f"msg_{n:010d}" for n in range(1, total + 1)]
    contents = [m["content"] for m in (await all_messages(app, sid))[1]]
    assert sorted(contents) == sorted(
        f"w{w}-m{m}" for w in range(WRITERS) for m in range(MESSAGES_EACH)
    )
    stats = (await app.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
    assert stats["message_count"] == stats["user_message_count"] == total


async def test_concurrent_resumes_with_one_client_id_yield_one_session(
    app: httpx.AsyncClient,
) -> None:
    async def resume() -> httpx.Response:
        return await app.post("/api/v1/sessions", json={"client_id": "ext-7f3a"}, headers=user())

    responses = await asyncio.gather(*(resume() for _ in range(12)))

    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["session_id"] for r in responses}) == 1
    assert [r.json()["session_resumed"] for r in responses].count(False) == 1
    listed = (await app.get("/api/v1/sessions", headers=user())).json()
    assert listed["total"] == 1


async def test_a_session_expires_after_its_inactivity_timeout(make_app: ClientFactory) -> None:
    async with make_app(default_session_ttl=1) as app:
        sid = (await create_session(app))["session_id"]
        assert (await app.get(f"/api/v1/sessions/{sid}", headers=user())).status_code == 200

        await asyncio.sleep(1.3)

        assert (await app.get(f"/api/v1/sessions/{sid}", headers=user())).status_code == 404
        listed = (await app.get("/api/v1/sessions", headers=user())).json()
        assert listed["total"] == 0
        resumed = await app.post("/api/v1/sessions", json={}, headers=user())
        assert resumed.status_code == 201


async def test_search_finds_by_text_status_and_metadata(app: httpx.AsyncClient) -> None:
    db = await create_session(app, title="DB timeouts", metadata={"env": "prod"})
    await create_session(app, title="Disk full", metadata={"env": "dev"})
    await create_session(app, "u2", title="DB timeouts too")
    await _append(app, db["session_id"], "connections pile up")

    found = await app.post(
        "/api/v1/sessions/search",
        json={"query": "timeouts", "status": "in_progress", "metadata": {"env": "prod"}},
        headers=user(),
    )

    assert found.status_code == 200, found.text
    assert [s["session_id"] for s in found.json()["sessions"]] == [db["session_id"]]
    assert found.json()["total"] == 1


async def test_admin_cleanup_reaches_every_user_on_every_node(
    make_app: ClientFactory, topology: Topology
) -> None:
    # 24 users spread over every cluster slot range; each has one session that expires.
    users = [f"user-{n}" for n in range(24)]
    async with make_app(default_session_ttl=1) as app:
        for uid in users:
            await create_session(app, uid)
        keeper = await create_session(app, "keeper", timeout_minutes=60)
        assert all(count > 0 for count in await topology.key_counts())  # data on every master

        await asyncio.sleep(1.3)
        cleaned = await app.post(
            "/api/v1/sessions/cleanup", headers=user("admin", **{"X-User-Roles": "admin"})
        )

        assert cleaned.status_code == 200, cleaned.text
        assert cleaned.json()["cleaned_sessions"] == len(users)
        again = await app.post(
            "/api/v1/sessions/cleanup", headers=user("admin", **{"X-User-Roles": "admin"})
        )
        assert again.json()["cleaned_sessions"] == 0
        kept = await app.get(f"/api/v1/sessions/{keeper['session_id']}", headers=user("keeper"))
        assert kept.status_code == 200


async def test_admin_erase_removes_every_key_of_one_user(app: httpx.AsyncClient) -> None:
    doomed = await create_session(app, "doomed")
    await _append(app, doomed["session_id"], "hello", uid="doomed")
    kept = await create_session(app, "kept")

    erased = await app.delete(
        "/api/v1/users/doomed/sessions", headers=user("admin", **{"X-User-Roles": "admin"})
    )

    assert erased.status_code == 200, erased.text
    assert erased.json()["deleted_sessions"] == 1
    gone = await app.get(f"/api/v1/sessions/{doomed['session_id']}", headers=user("doomed"))
    assert gone.status_code == 404
    assert (await app.get("/api/v1/sessions", headers=user("doomed"))).json()["total"] == 0
    still = await app.get(f"/api/v1/sessions/{kept['session_id']}", headers=user("kept"))
    assert still.status_code == 200


async def test_more_concurrent_writers_than_connections(
    make_app: ClientFactory, topology: Topology
) -> None:
    """Standalone and Sentinel queue a request for a free connection (no 503).

    redis-py's Cluster client keeps a pool per node that refuses at once when full:
    there the extra writers get a clean 503 with Retry-After (never a 500), and every
    acknowledged message is stored exactly once.
    """
    async with make_app(redis_max_connections=2) as client:
        sid = (await create_session(client))["session_id"]
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/api/v1/sessions/{sid}/messages",
                    json={"role": "user", "content": f"m{i}"},
                    headers=user(),
                )
                for i in range(24)
            )
        )
        statuses = [r.status_code for r in responses]
        acked = [r.json()["message"]["message_id"] for r in responses if r.status_code == 201]
        stats = (await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
    if topology.mode == "cluster":
        assert set(statuses) <= {201, 503}
        assert all(r.headers.get("Retry-After") for r in responses if r.status_code == 503)
    else:
        assert statuses == [201] * 24
    assert len(set(acked)) == len(acked) == stats["message_count"]


async def test_tool_calls_summaries_and_the_window_work_in_one_slot(
    app: httpx.AsyncClient,
) -> None:
    sid = (await create_session(app))["session_id"]
    url = f"/api/v1/sessions/{sid}"
    call = {"role": "assistant", "tool_calls": [{"id": "c1", "name": "f"}], "token_count": 5}
    for body in (
        {"role": "user", "content": "why?", "token_count": 3},
        call,
        {"role": "tool", "content": "42", "tool_call_id": "c1", "token_count": 4},
    ):
        response = await app.post(f"{url}/messages", json=body, headers=user())
        assert response.status_code == 201, response.text
    again = await app.post(
        f"{url}/messages", json={"role": "tool", "content": "x", "tool_call_id": "c1"},
        headers=user(),
    )  # fmt: skip
    summary = await app.post(
        f"{url}/summaries", json={"content": "s", "covers_through": "msg_0000000001",
                                  "token_count": 2}, headers=user(),
    )  # fmt: skip

    window = (await app.get(f"{url}/window?max_tokens=11", headers=user())).json()

    assert again.json()["code"] == "tool_call_already_answered"
    assert summary.status_code == 201, summary.text
    assert window["summary"] == summary.json()
    assert [m["message_id"] for m in window["messages"]] == ["msg_0000000002", "msg_0000000003"]
    assert (window["total_tokens"], window["truncated"]) == (11, False)


async def _kill_service_connections(topology: Topology) -> int:
    """Close, on every primary, each connection a redis-py client holds (but our own)."""
    killed = 0
    for url in topology.primaries():
        async with Redis.from_url(url, decode_responses=True) as admin:
            own = await admin.client_id()
            for client in await admin.client_list():
                if client.get("lib-name") == "redis-py" and int(client["id"]) != own:
                    killed += int(await admin.client_kill_filter(_id=client["id"]))
    return killed


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_a_write(
    app: httpx.AsyncClient, topology: Topology
) -> None:
    """Nothing was sent on it, so it is no 503: the write goes on a fresh connection, once."""
    sid = (await create_session(app))["session_id"]
    for i in range(3):
        assert await _kill_service_connections(topology) > 0
        for _ in range(5):
            await asyncio.sleep(0)  # loop turns (not time) for the closed sockets to be read
        await _append(app, sid, f"after kill {i}")
    page = await app.get(f"/api/v1/sessions/{sid}/messages", headers=user())
    assert [m["content"] for m in page.json()["messages"]] == [f"after kill {i}" for i in range(3)]
