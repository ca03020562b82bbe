"""The change feed's header-only form (`Accept: application/json`), through both paths.

The stream form needs a real socket (tests/ops/test_events_stream.py); these run the
same route as a long poll over ASGI, each through the fast path and the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.conftest import create_session, user
from tests.helpers import appended

JSON = {"Accept": "application/json"}


def events_url(sid: str) -> str:
    return f"/api/v1/sessions/{sid}/events"


async def poll(
    client: httpx.AsyncClient, sid: str, user_id: str = "u1", **headers: str
) -> httpx.Response:
    return await client.get(events_url(sid), headers=user(user_id, **JSON, **headers))


async def append(client: httpx.AsyncClient, sid: str, content: str, user_id: str = "u1") -> Any:
    return await appended(client, sid, user_id, role="user", content=content)


async def until(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `condition` until it holds (a deadline, not a guess of the machine's speed)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def watching(feed: Any, count: int = 1) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(feed) >= count

    return check


def kinds(body: dict[str, Any]) -> list[str]:
    return [event["event"] for event in body["events"]]


async def test_opens_with_the_session_and_its_etag(client: httpx.AsyncClient) -> None:
    session = await create_session(client, title="t")
    response = await poll(client, session["session_id"])
    assert response.status_code == 200
    body = response.json()
    assert kinds(body) == ["session"]
    got = await client.get(f"/api/v1/sessions/{session['session_id']}", headers=user())
    assert body["events"][0]["data"] == {"etag": got.headers["etag"], "session": got.json()}
    assert response.headers["etag"] == got.headers["etag"]
    assert body["last_event_id"] == "msg_0000000000"
    # The same ETag as If-None-Match: nothing to say, so an immediate empty answer.
    again = await poll(client, session["session_id"], **{"If-None-Match": got.headers["etag"]})
    assert again.json() == {"events": [], "last_event_id": "msg_0000000000"}


async def test_replays_every_message_after_the_last_event_id(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    stored = [await append(client, sid, f"m{i}") for i in range(5)]
    body = (await poll(client, sid, **{"Last-Event-ID": "msg_0000000002"})).json()
    assert kinds(body) == ["message"] * 3
    for event in body["events"]:
        one = await client.get(f"/api/v1/sessions/{sid}/messages/{event['id']}", headers=user())
        assert event["data"] == one.json()  # exactly as get-one answers it
    assert [e["id"] for e in body["events"]] == [m["message_id"] for m in stored[2:]]
    assert body["last_event_id"] == stored[-1]["message_id"]
    start = (await poll(client, sid, **{"Last-Event-ID": "msg_0000000000"})).json()
    assert [e["id"] for e in start["events"]] == [m["message_id"] for m in stored]


async def test_waits_for_the_next_change(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    first = await append(client, sid, "one")
    waiting = asyncio.create_task(
        poll(client, sid, **{"Last-Event-ID": first["message_id"], "Prefer": "wait=20"})
    )
    # The poll is held until a change happens: append once it has registered.
    feed = client.app.state.feed  # type: ignore[attr-defined]
    await until(watching(feed))
    second = await append(client, sid, "two")
    response = await waiting
    body = response.json()
    assert response.headers["preference-applied"] == "wait=20"
    assert kinds(body)[0] == "message"
    assert body["events"][0]["id"] == second["message_id"]
    assert body["last_event_id"] == second["message_id"]
    assert len(feed) == 0


async def test_wait_passes_with_no_change(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    etag = (await poll(client, sid)).headers["etag"]
    response = await poll(
        client,
        sid,
        **{"Last-Event-ID": "msg_0000000000", "If-None-Match": etag, "Prefer": "wait=1"},
    )
    assert response.json() == {"events": [], "last_event_id": "msg_0000000000"}
    assert response.headers["preference-applied"] == "wait=1"


async def test_wait_is_capped_at_25_seconds(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await poll(client, sid, Prefer="wait=600")
    assert response.headers["preference-applied"] == "wait=25"  # answered at once: session


async def test_rewound_and_summary_and_deleted(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    stored = [await append(client, sid, f"m{i}") for i in range(5)]
    opened = await poll(client, sid, **{"Last-Event-ID": stored[-1]["message_id"]})
    etag = opened.headers["etag"]
    rewind = await client.post(
        f"/api/v1/sessions/{sid}/rewind", json={"to_message_id": stored[2]["message_id"]},
        headers=user(),
    )  # fmt: skip
    assert rewind.status_code == 200, rewind.text
    body = (
        await poll(
            client, sid, **{"Last-Event-ID": stored[-1]["message_id"], "If-None-Match": etag}
        )
    ).json()
    assert kinds(body) == ["rewound", "session"]
    assert body["events"][0]["data"] == {
        "session_id": sid, "last_message_id": stored[2]["message_id"],
    }  # fmt: skip
    assert body["last_event_id"] == stored[2]["message_id"]
    assert body["events"][1]["data"]["session"]["message_count"] == 3

    waiting = asyncio.create_task(
        poll(client, sid, **{"Last-Event-ID": body["last_event_id"], "Prefer": "wait=20"})
    )
    feed = client.app.state.feed  # type: ignore[attr-defined]
    await until(watching(feed))
    summary = await client.post(
        f"/api/v1/sessions/{sid}/summaries",
        json={"content": "so far", "covers_through": stored[1]["message_id"]},
        headers=user(),
    )
    assert summary.status_code == 201, summary.text
    body = (await waiting).json()
    assert kinds(body) == ["summary", "session"]
    assert body["events"][0]["data"]["summary_id"] == summary.json()["summary_id"]

    waiting = asyncio.create_task(
        poll(client, sid, **{"Last-Event-ID": body["last_event_id"], "Prefer": "wait=20"})
    )
    await until(watching(feed))
    assert (await client.delete(f"/api/v1/sessions/{sid}", headers=user())).status_code == 204
    body = (await waiting).json()
    assert body["events"] == [{"event": "deleted", "id": None, "data": {"session_id": sid}}]


async def test_another_users_session_is_404(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, "owner"))["session_id"]
    response = await poll(client, sid, "intruder")
    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
    # Even with a malformed Last-Event-ID: the unknown session comes first.
    response = await poll(client, sid, "intruder", **{"Last-Event-ID": "nope"})
    assert response.status_code == 404


async def test_a_malformed_last_event_id_is_422(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await poll(client, sid, **{"Last-Event-ID": "sum_0000000001"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["field"] == "Last-Event-ID"


async def test_one_watcher_past_the_cap_is_429(make_client: Any) -> None:
    async with make_client(max_watchers_per_user=2) as client:
        sid = (await create_session(client))["session_id"]
        etag = (await poll(client, sid)).headers["etag"]
        held = [
            asyncio.create_task(poll(client, sid, **{"If-None-Match": etag, "Prefer": "wait=20"}))
            for _ in range(2)
        ]
        feed = client.app.state.feed
        await until(watching(feed, 2))
        # Slots are taken after the first read: wait until both are in Redis.
        redis = feed.store.client
        key = feed.store.keys.base("u1") + "v"

        async def both_held() -> bool:
            return int(await redis.zcard(key)) >= 2

        await until(both_held)
        refused = await poll(client, sid)
        assert refused.status_code == 429
        assert refused.json()["code"] == "too_many_watchers"
        assert refused.headers["retry-after"]
        # Another user is not affected.
        other = (await create_session(client, "u2"))["session_id"]
        assert (await poll(client, other, "u2")).status_code == 200
        await append(client, sid, "wake them")
        for task in held:
            assert (await task).status_code == 200
        assert await redis.zcard(key) == 0
        assert (await poll(client, sid)).status_code == 200
