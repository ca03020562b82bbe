"""`fm-session-service`: serve (default) and the admin commands, run as the
installed console script against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import wait_past
from tests.ops.service import cli


async def test_help_lists_serve_and_every_admin_command(tmp_path: Path) -> None:
    code, out, _ = await cli(tmp_path, "--help")
    assert code == 0
    assert out.startswith("usage: fm-session-service")
    for command in ("serve", "cleanup", "export", "erase-user", "import-legacy"):
        assert f"\n    {command} " in out, command
    assert "export SESSION_ID --user USER" in out


async def test_export_prints_the_whole_transcript_as_json(
    tmp_path: Path, client: httpx.AsyncClient, redis_url: str
) -> None:
    session = await create_session(client, "u-cli", title="DB timeouts")
    url = f"/api/v1/sessions/{session['session_id']}/messages"
    for n in range(3):
        await client.post(url, json={"role": "user", "content": f"m{n}"}, headers=user("u-cli"))
    code, out, err = await cli(
        tmp_path, "export", session["session_id"], "--user", "u-cli", REDIS_URL=redis_url
    )
    assert code == 0, err
    transcript = json.loads(out)
    assert transcript["session_id"] == session["session_id"]
    assert transcript["title"] == "DB timeouts"
    assert [m["content"] for m in transcript["messages"]] == ["m0", "m1", "m2"]


async def test_export_of_another_users_session_fails_with_not_found(
    tmp_path: Path, client: httpx.AsyncClient, redis_url: str
) -> None:
    session = await create_session(client, "owner")
    code, out, err = await cli(
        tmp_path, "export", session["session_id"], "--user", "intruder", REDIS_URL=redis_url
    )
    assert code == 1
    assert out == ""
    assert "Session not found" in err
    assert "Traceback" not in err


async def test_cleanup_shows_progress_on_stderr_and_a_summary_on_stdout(
    tmp_path: Path, make_client: ClientFactory, redis: Redis, redis_url: str
) -> None:
    async with make_client(default_session_ttl=1) as client:
        short = await create_session(client, "u-a")
    await create_session_for(make_client, "u-b")
    await wait_past(redis, short["expires_at"])
    code, out, err = await cli(tmp_path, "cleanup", REDIS_URL=redis_url)
    assert code == 0, err
    assert json.loads(out) == {"cleaned_sessions": 1, "scanned": 2}
    progress = err.split("\r")
    assert "users 1 " in progress[1]
    assert progress[-1].strip() == "users 2  sessions scanned 2  expired removed 1"


async def create_session_for(make_client: ClientFactory, user_id: str) -> None:
    async with make_client() as client:
        await create_session(client, user_id)


async def test_erase_user_deletes_every_session_of_that_user_only(
    tmp_path: Path, client: httpx.AsyncClient, redis_url: str
) -> None:
    for owner in ("gone", "gone", "stays"):
        await create_session(client, owner)
    code, out, err = await cli(tmp_path, "erase-user", "gone", REDIS_URL=redis_url)
    assert code == 0, err
    assert json.loads(out)["deleted_sessions"] == 2
    remaining = {
        owner: (await client.get("/api/v1/sessions", headers=user(owner))).json()["total"]
        for owner in ("gone", "stays")
    }
    assert remaining == {"gone": 0, "stays": 1}


async def test_a_bad_setting_stops_the_command_with_one_line_naming_it(tmp_path: Path) -> None:
    code, _, err = await cli(tmp_path, "cleanup", PORT="eighty")
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert "PORT" in err


async def test_export_carries_tool_calls_token_counts_and_summaries(
    tmp_path: Path, client: httpx.AsyncClient, redis_url: str
) -> None:
    sid = (await create_session(client, "u-cli"))["session_id"]
    url = f"/api/v1/sessions/{sid}"
    h = user("u-cli")
    calls = [{"id": "call_1", "name": "get_metrics", "arguments": {"host": "db-1"}}]
    await client.post(f"{url}/messages", json={"role": "user", "content": "slow?"}, headers=h)
    await client.post(f"{url}/messages", json={"role": "assistant", "tool_calls": calls,
                                               "token_count": 9}, headers=h)  # fmt: skip
    await client.post(
        f"{url}/messages", json={"role": "tool", "content": "p99 870", "tool_call_id": "call_1"},
        headers=h,
    )  # fmt: skip
    summary = await client.post(
        f"{url}/summaries", json={"content": "db-1 slow", "covers_through": "msg_0000000002"},
        headers=h,
    )  # fmt: skip
    paged = (await client.get(f"{url}/messages", headers=h)).json()["messages"]

    code, out, err = await cli(tmp_path, "export", sid, "--user", "u-cli", REDIS_URL=redis_url)

    assert code == 0, err
    transcript = json.loads(out)
    assert transcript["messages"] == paged
    assert transcript["messages"][1]["tool_calls"] == calls
    assert transcript["messages"][1]["token_count"] == 9
    assert transcript["messages"][2]["tool_call_id"] == "call_1"
    assert transcript["messages"][2]["token_count_estimated"] is True
    assert transcript["summaries"] == [summary.json()]
