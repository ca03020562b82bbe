"""Fork and rewind (issue 14): copies with their ids, roles, tool calls, token counts
and summaries; independent afterwards; ids never reused; bookkeeping follows the
messages; If-Match, archived, deleted and limits answered like every write."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, get_json, mid, wait_past

KEYS = Keys("fms")
CALLS = [
    {"id": "call_1", "name": "get_metrics", "arguments": {"host": "db-1"}},
    {"id": "call_2", "name": "tail_logs", "arguments": {"lines": 50}},
]
# msg_1 user, msg_2 assistant calling two tools, msg_3 and msg_4 their results,
# msg_5 assistant, msg_6 user.
TURNS: list[dict[str, Any]] = [
    {"role": "user", "content": "the db is slow", "token_count": 5},
    {"role": "assistant", "content": "", "tool_calls": CALLS, "token_count": 20},
    {"role": "tool", "content": "cpu 95%", "tool_call_id": "call_1", "token_count": 3},
    {"role": "tool", "content": "timeouts", "tool_call_id": "call_2", "token_count": 4},
    {"role": "assistant", "content": "it is the cpu", "token_count": 6},
    {"role": "user", "content": "thanks"},
]


async def _conversation(client: httpx.AsyncClient, **session: Any) -> str:
    sid = (
        await create_session(
            client,
            title="Slow db",
            description="prod",
            session_type="incident",
            metadata={"team": "db"},
            **session,
        )
    )["session_id"]
    await client.patch(f"{API}/{sid}", json={"context": {"step": 1}}, headers=user())
    for turn in TURNS:
        response = await client.post(f"{API}/{sid}/messages", json=turn, headers=user())
        assert response.status_code == 201, response.text
    summary = {"content": "db slow, cpu", "covers_through": "msg_0000000003", "token_count": 2}
    assert (
        await client.post(f"{API}/{sid}/summaries", json=summary, headers=user())
    ).status_code == 201
    return sid


async def _messages(client: httpx.AsyncClient, sid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    while True:
        page = (await client.get(f"{API}/{sid}/messages", params=params, headers=user())).json()
        out += page["messages"]
        if not page["has_more"]:
            return out
        params["after"] = page["next_cursor"]


async def _fork(client: httpx.AsyncClient, sid: str, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/{sid}/fork", json=body, headers=user())


async def _rewind(client: httpx.AsyncClient, sid: str, to: str, **headers: str) -> httpx.Response:
    return await client.post(
        f"{API}/{sid}/rewind", json={"to_message_id": to}, headers=user(**headers)
    )


async def test_fork_at_the_first_a_middle_and_the_last_message(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    source = await _messages(client, sid)
    source_stats = await get_json(client, f"{API}/{sid}/stats")
    for through, summaries in ((1, 0), (3, 1), (None, 1)):
        body = {} if through is None else {"through_message_id": mid(through)}
        response = await _fork(client, sid, **body)
        assert response.status_code == 201, response.text
        fork = response.json()
        n = len(TURNS) if through is None else through
        assert fork["session_id"] != sid
        assert fork["forked_from"] == {"session_id": sid, "message_id": mid(n)}
        assert (fork["title"], fork["description"]) == ("Slow db", "prod")
        assert (fork["session_type"], fork["metadata"]) == ("incident", {"team": "db"})
        assert fork["context"] == {}
        assert fork["message_count"] == n
        assert (
            response.headers["etag"]
            == (await client.get(f"{API}/{fork['session_id']}", headers=user())).headers["etag"]
        )
        copied = await _messages(client, fork["session_id"])
        assert copied == source[:n], "same ids, roles, contents, tool calls and counts"
        stats = await get_json(client, f"{API}/{fork['session_id']}/stats")
        assert stats["total_tokens"] == sum(m["token_count"] for m in copied)
        assert stats["tool_message_count"] == sum(m["role"] == "tool" for m in copied)
        assert stats["first_message_at"] == copied[0]["timestamp"]
        assert stats["last_message_at"] == copied[-1]["timestamp"]
        if n == len(TURNS):
            assert {k: v for k, v in stats.items() if k.endswith(("_count", "_tokens"))} == {
                k: v for k, v in source_stats.items() if k.endswith(("_count", "_tokens"))
            }
        listed = await get_json(client, f"{API}/{fork['session_id']}/summaries")
        assert len(listed["summaries"]) == summaries
    # The source is untouched.
    assert await _messages(client, sid) == source


async def test_fork_and_source_are_independent_afterwards(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    fork = (await _fork(client, sid, through_message_id=mid(2), title="try b")).json()
    fid = fork["session_id"]
    assert fork["title"] == "try b"
    # The fork's call_2 was never answered there: its result may be given once, in the fork.
    answer = {"role": "tool", "content": "other logs", "tool_call_id": "call_2"}
    in_fork = await client.post(f"{API}/{fid}/messages", json=answer, headers=user())
    assert in_fork.status_code == 201, in_fork.text
    assert in_fork.json()["message"]["message_id"] == mid(3)
    again = await client.post(f"{API}/{sid}/messages", json=answer, headers=user())
    assert again.json()["code"] == "tool_call_already_answered"
    appended = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "more"}, headers=user()
    )
    assert appended.json()["message"]["message_id"] == mid(7)
    assert (await get_json(client, f"{API}/{fid}"))["message_count"] == 3

    await client.post(f"{API}/{sid}/rewind", json={"to_message_id": mid(1)}, headers=user())
    assert (await get_json(client, f"{API}/{fid}"))["message_count"] == 3
    assert (await client.delete(f"{API}/{sid}", headers=user())).status_code == 204
    assert [m["content"] for m in await _messages(client, fid)][-1] == "other logs"
    assert (await get_json(client, f"{API}/{fid}"))["forked_from"]["session_id"] == sid


async def test_fork_refusals(make_client: ClientFactory, redis: Redis) -> None:
    async with make_client(max_sessions_per_user=2) as client:
        sid = await _conversation(client)
        missing = f"sess_{'0' * 32}"
        assert (await _fork(client, missing)).status_code == 404
        unknown = await _fork(client, sid, through_message_id=mid(99))
        assert (unknown.status_code, unknown.json()["code"]) == (404, "message_not_found")
        bad = await _fork(client, sid, through_message_id="m1")
        assert bad.status_code == 422
        assert (await _fork(client, sid)).status_code == 201
        full = await _fork(client, sid)
        assert (full.status_code, full.json()["code"]) == (409, "session_limit_reached")
        keys = [key async for key in redis.scan_iter(match=KEYS.user_pattern("u1"), count=1000)]
        assert not [key for key in keys if missing in key]
        sids = {sid, *(s["session_id"] for s in (await get_json(client, API))["sessions"])}
        assert len(sids) == 2
        strays = [k for k in keys if ":sess_" in k and k.rsplit(":", 1)[1] not in sids]
        assert strays == [], "a refused fork leaves no copy behind"


async def test_fork_takes_an_idempotency_key(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    headers = user(**{"Idempotency-Key": "fork-1"})
    first = await client.post(f"{API}/{sid}/fork", json={"title": "b"}, headers=headers)
    retry = await client.post(f"{API}/{sid}/fork", json={"title": "b"}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert first.json()["session_id"] == retry.json()["session_id"]
    other = await client.post(f"{API}/{sid}/fork", json={"title": "c"}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert (await get_json(client, API))["total"] == 2


async def test_rewind_then_append_continues_the_ids(client: httpx.AsyncClient) -> None:
    sid = await _conversation(client)
    before = await get_json(client, f"{API}/{sid}/stats")
    response = await _rewind(client, sid, mid(2))
    assert response.status_code == 200, response.text
    assert response.json() == {"removed": 4, "last_message_id": mid(2)}
    assert (
        response.headers["etag"]
        == (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    )
    kept = await _messages(client, sid)
    assert [m["message_id"] for m in kept] == [mid(1), mid(2)]
    stats = await get_json(client, f"{API}/{sid}/stats")
    assert stats["message_count"] == 2
    assert stats["tool_message_count"] == 0
    assert stats["total_tokens"] == 25
    assert stats["last_message_at"] == kept[-1]["timestamp"]
    assert stats["first_message_at"] == before["first_message_at"]
    # The summary covered msg_3, which is gone.
    assert (await get_json(client, f"{API}/{sid}/summaries"))["summaries"] == []
    window = await get_json(client, f"{API}/{sid}/window?max_tokens=1000")
    assert window["summary"] is None
    # Both calls of msg_2 are unanswered again.
    for call in ("call_1", "call_2"):
        answer = {"role": "tool", "content": "again", "tool_call_id": call}
        response = await client.post(f"{API}/{sid}/messages", json=answer, headers=user())
        assert response.status_code == 201, response.text
    ids = [m["message_id"] for m in await _messages(client, sid)]
    assert ids == [mid(1), mid(2), mid(7), mid(8)], "ids continue after the highest given"

    assert (await _rewind(client, sid, mid(1))).json() == {
        "removed": 3,
        "last_message_id": mid(1),
    }
    gone = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "tool", "content": "x", "tool_call_id": "call_1"},
        headers=user(),
    )
    assert gone.json()["code"] == "unknown_tool_call", "the call went with msg_2"
    nothing = await _rewind(client, sid, "msg_0000000000")
    assert nothing.json() == {"removed": 1, "last_message_id": None}
    assert (await get_json(client, f"{API}/{sid}"))["message_count"] == 0
    last = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "anew"}, headers=user()
    )
    assert last.json()["message"]["message_id"] == mid(9)


async def test_rewind_refusals_and_if_match(client: httpx.AsyncClient, redis: Redis) -> None:
    sid = await _conversation(client)
    stale = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "one more"}, headers=user()
    )
    current = (await client.get(f"{API}/{sid}/messages", headers=user())).headers["etag"]
    refused = await _rewind(client, sid, mid(3), **{"If-Match": stale})
    assert (refused.status_code, refused.headers["etag"]) == (412, current)
    assert refused.json()["code"] == "precondition_failed"
    assert (await get_json(client, f"{API}/{sid}"))["message_count"] == 7
    # A heartbeat does not move the messages ETag.
    await client.post(f"{API}/{sid}/heartbeat", headers=user())
    unchanged = await _rewind(client, sid, mid(6), **{"If-Match": current})
    assert unchanged.json()["removed"] == 1
    noop = await _rewind(client, sid, mid(6), **{"If-Match": unchanged.headers["etag"]})
    assert noop.json() == {"removed": 0, "last_message_id": mid(6)}
    assert noop.headers["etag"] == unchanged.headers["etag"], "nothing removed, same ETag"
    unknown = await _rewind(client, sid, mid(7))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "message_not_found")
    invalid = await client.post(
        f"{API}/{sid}/rewind", json={"to_message_id": 3}, headers=user(**{"If-Match": stale})
    )
    assert invalid.status_code == 412, "the precondition before the request"

    await client.post(f"{API}/{sid}/archive", headers=user())
    archived = await _rewind(client, sid, mid(1))
    assert (archived.status_code, archived.json()["code"]) == (409, "session_archived")
    assert (await client.delete(f"{API}/{sid}", headers=user())).status_code == 204
    assert (await _rewind(client, sid, mid(1))).status_code == 404
    assert [k async for k in redis.scan_iter(match=f"*{sid}*")] == []


async def test_a_keyspace_walk_after_deleting_forks_finds_nothing_of_them(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    sid = await _conversation(client)
    forks = [
        (await _fork(client, sid, through_message_id=mid(n))).json()["session_id"]
        for n in (1, 4, 6)
    ]
    await _rewind(client, forks[2], mid(2))
    for fid in forks:
        assert (await client.delete(f"{API}/{fid}", headers=user())).status_code == 204
    keys = [key async for key in redis.scan_iter(match=KEYS.user_pattern("u1"), count=1000)]
    assert [k for k in keys if any(fid in k for fid in forks)] == []
    per_session = [k for k in keys if ":sess_" in k]
    assert per_session and all(sid in k for k in per_session), per_session
    assert (await get_json(client, f"{API}/{sid}"))["message_count"] == len(TURNS)


async def test_an_export_after_a_rewind_and_an_append_has_every_message(
    client: httpx.AsyncClient,
) -> None:
    sid = await _conversation(client)
    await _rewind(client, sid, mid(4))
    await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "after"}, headers=user()
    )
    exported = (await client.get(f"{API}/{sid}/export", headers=user())).json()
    ids = [m["message_id"] for m in exported["messages"]]
    assert ids == [mid(1), mid(2), mid(3), mid(4), mid(7)]
    markdown = (await client.get(f"{API}/{sid}/export?format=markdown", headers=user())).text
    assert "after" in markdown


async def test_deleted_or_expired_means_gone_for_forks_rewinds_and_conditional_writes(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=2) as client:
        deleted = await _conversation(client, timeout_minutes=10)
        expired = await _conversation(client)
        assert (await client.delete(f"{API}/{deleted}", headers=user())).status_code == 204
        expires = (await get_json(client, f"{API}/{expired}"))["expires_at"]
        await wait_past(redis, expires)
        star = {"If-Match": "*"}
        for sid in (deleted, expired):
            attempts = [
                await _fork(client, sid),
                await _rewind(client, sid, mid(1)),
                await _rewind(client, sid, mid(1), **star),
                await client.patch(f"{API}/{sid}", json={"title": "x"}, headers=user(**star)),
                await client.post(f"{API}/{sid}/archive", headers=user(**star)),
                await client.post(f"{API}/{sid}/cleanup", headers=user(**star)),
                await client.post(
                    f"{API}/{sid}/messages", json={"role": "user", "content": "late"},
                    headers=user(**star),
                ),
                await client.post(
                    f"{API}/{sid}/summaries", json={"content": "s", "covers_through": mid(1)},
                    headers=user(**star),
                ),
            ]  # fmt: skip
            assert [r.status_code for r in attempts] == [404] * len(attempts)
            assert [k async for k in redis.scan_iter(match=f"*{sid}*")] == [], sid


async def test_a_long_rewind_keeps_summary_ids_and_message_ids_unused(
    client: httpx.AsyncClient,
) -> None:
    sid = await _conversation(client)  # 6 messages, sum_0000000001 covers msg_3
    for i in range(70):
        await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": f"x{i}"}, headers=user()
        )
    late = {"content": "late", "covers_through": mid(70)}
    assert (await client.post(f"{API}/{sid}/summaries", json=late, headers=user())).json()[
        "summary_id"
    ] == "sum_0000000002"
    rewound = await _rewind(client, sid, mid(4))  # 72 removed: copied and swapped
    assert rewound.json() == {"removed": 72, "last_message_id": mid(4)}
    listed = await get_json(client, f"{API}/{sid}/summaries")
    assert [s["summary_id"] for s in listed["summaries"]] == ["sum_0000000001"]
    again = {"content": "again", "covers_through": mid(4)}
    stored = await client.post(f"{API}/{sid}/summaries", json=again, headers=user())
    assert stored.json()["summary_id"] == "sum_0000000003", "summary ids are never reused"
    appended = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "n"}, headers=user()
    )
    assert appended.json()["message"]["message_id"] == mid(77)
    assert (await get_json(client, f"{API}/{sid}/stats"))["message_count"] == 5
