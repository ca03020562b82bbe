"""`fm-session-service import-legacy` (issue 12, item 6): sessions written in the
original service's format into a real server are imported, then read through
the HTTP API with the ids the clients hold."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.domain.tokens import estimate_tokens
from tests.conftest import ClientFactory, user
from tests.helpers import API, SESSION_RECORDS
from tests.legacy import LEGACY_DB, WEEK, at, message, record, service_iso, write
from tests.ops.service import cli
from tests.servers import redis_server


@pytest.fixture
async def source(redis: Redis, redis_url: str) -> AsyncIterator[Redis]:
    """The original's database (db 1) on the test server; `redis` flushed every db."""
    client = Redis(
        port=int(redis_url.rsplit(":", 1)[1].split("/")[0]), db=LEGACY_DB, decode_responses=True
    )
    yield client
    await client.aclose()


async def run(tmp_path: Path, redis_url: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    source_url = redis_url.rsplit("/", 1)[0]
    code, out, err = await cli(
        tmp_path, "import-legacy", "--source", source_url, *extra, REDIS_URL=redis_url
    )
    return code, json.loads(out), err


async def server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def all_messages(client: httpx.AsyncClient, sid: str, user_id: str) -> list[dict[str, Any]]:
    """Every message, read in pages with the exclusive `after` cursor."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, "order": "asc"}
        if after:
            params["after"] = after
        page = await client.get(f"{API}/{sid}/messages", params=params, headers=user(user_id))
        assert page.status_code == 200, page.text
        batch = page.json()["messages"]
        if not batch:
            return out
        out += batch
        after = batch[-1]["message_id"]


async def test_import_keeps_ids_fields_messages_timestamps_and_the_remaining_ttl(
    tmp_path: Path, source: Redis, redis: Redis, redis_url: str, client: httpx.AsyncClient
) -> None:
    started, said, answered = at(30), at(20), at(19)
    legacy = record(
        "alice",
        title="Database connection timeout",
        client_id="chrome_extension_v1",
        created=started,
        last_activity=answered,
        context={"blast_radius": "single_database", "hops": [1, 2]},
        metadata={"session_type": "troubleshooting", "timeout_minutes": 240, "team": "db"},
        messages=[
            message("user", "My database keeps timing out", said),
            message("assistant", "Let's look at the pool", answered, reasoning="pool"),
        ],
    )
    sid = await write(source, legacy, ttl=3 * 86400)
    before = await server_ms(redis)
    remaining = await source.pttl(f"session:{sid}")
    archived = await write(source, record("bob", title="old", status="archived"), ttl=None)

    code, summary, err = await run(tmp_path, redis_url)
    after = await server_ms(redis)
    assert code == 0, err
    assert (summary["imported"], summary["skipped"], summary["failed"]) == (2, [], [])
    assert summary["source"].endswith(f"db {LEGACY_DB}")
    assert err.split("\r")[-1].strip() == "scanned 2  imported 2  skipped 0  failed 0"

    got = (await client.get(f"{API}/{sid}", headers=user("alice"))).json()
    assert got["session_id"] == sid
    assert got["title"] == "Database connection timeout"
    assert got["status"] == "active"
    assert got["client_id"] == "chrome_extension_v1"
    assert got["metadata"] == legacy["metadata"]
    assert got["context"] == legacy["context"]
    assert got["session_type"] == "troubleshooting"
    assert got["timeout_minutes"] == 240
    assert got["created_at"] == service_iso(started)
    assert got["last_activity_at"] == service_iso(answered)
    assert got["message_count"] == 2
    # The original's deadline lies between before+remaining and the read's time+remaining;
    # the import re-derives it from its own read, so it lands in this window.
    expires = round(datetime.fromisoformat(got["expires_at"]).timestamp() * 1000)
    assert before + remaining - 1 <= expires <= after + remaining + 1

    messages = await all_messages(client, sid, "alice")
    assert [(m["role"], m["content"], m["timestamp"]) for m in messages] == [
        ("user", "My database keeps timing out", service_iso(said)),
        ("assistant", "Let's look at the pool", service_iso(answered)),
    ]
    assert messages[1]["metadata"] == {"reasoning": "pool"}
    # The original had no token counts: each message gets the service's estimate, flagged.
    estimates = [estimate_tokens(m["content"]) for m in messages]
    assert [(m["token_count"], m["token_count_estimated"]) for m in messages] == [
        (n, True) for n in estimates
    ]
    counted = (await client.get(f"{API}/{sid}/stats", headers=user("alice"))).json()
    assert (counted["user_message_count"], counted["assistant_message_count"]) == (1, 1)
    assert counted["total_tokens"] == sum(estimates)
    assert counted["total_tokens_by_role"]["assistant"] == estimates[1]
    window = await client.get(
        f"{API}/{sid}/window", params={"max_tokens": estimates[1]}, headers=user("alice")
    )
    assert [m["content"] for m in window.json()["messages"]] == ["Let's look at the pool"]
    assert window.json()["truncated"] is True
    assert (counted["first_message_at"], counted["last_message_at"]) == (
        service_iso(said),
        service_iso(answered),
    )
    export = await client.get(f"{API}/{sid}/export", headers=user("alice"))
    assert export.status_code == 200
    assert [m["content"] for m in export.json()["messages"]] == [
        "My database keeps timing out",
        "Let's look at the pool",
    ]

    kept = (await client.get(f"{API}/{archived}", headers=user("bob"))).json()
    assert (kept["status"], kept["expires_at"]) == ("archived", None)

    stats = (await client.get(f"{API}/statistics", headers=user("alice"))).json()
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 2)
    assert stats["by_status"]["active"] == 1
    assert stats["oldest_activity_at"] == stats["newest_activity_at"] == service_iso(answered)
    assert (await client.head(f"{API}/{sid}", headers=user("alice"))).status_code == 200
    await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "more"}, headers=user("alice")
    )
    assert (await client.get(f"{API}/statistics", headers=user("alice"))).json()[
        "total_messages"
    ] == 3
    assert (await client.delete(f"{API}/{sid}", headers=user("alice"))).status_code == 204
    assert (await client.get(f"{API}/statistics", headers=user("alice"))).json()[
        "total_messages"
    ] == 0


async def test_a_client_holding_the_original_id_keeps_working(
    tmp_path: Path, source: Redis, redis_url: str, client: httpx.AsyncClient
) -> None:
    sid = await write(source, record("carol", title="t", client_id="ext-1"))
    assert (await run(tmp_path, redis_url))[0] == 0
    resumed = await client.post(API, json={"client_id": "ext-1"}, headers=user("carol"))
    assert (resumed.status_code, resumed.json()["session_id"]) == (200, sid)
    appended = await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "hi"}, headers=user("carol")
    )
    assert appended.status_code == 201, appended.text
    assert appended.json()["message"]["message_id"] == "msg_0000000001"
    for method, path in [
        ("POST", f"{API}/{sid}/heartbeat"),
        ("PATCH", f"{API}/{sid}"),
        ("GET", f"{API}/{sid}/cases"),
        ("POST", f"{API}/{sid}/archive"),
        ("POST", f"{API}/{sid}/restore"),
    ]:
        body = {"title": "renamed"} if method == "PATCH" else None
        answer = await client.request(method, path, json=body, headers=user("carol"))
        assert answer.status_code == 200, (method, path, answer.text)
    listed = (await client.get(API, headers=user("carol"))).json()
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    found = await client.post(f"{API}/search", json={"query": "renamed"}, headers=user("carol"))
    assert [s["session_id"] for s in found.json()["sessions"]] == [sid]
    upper = await client.get(f"{API}/{sid.upper()}", headers=user("carol"))
    assert upper.status_code == 404
    other = await client.get(f"{API}/{sid}", headers=user("mallory"))
    assert other.status_code == 404
    assert (await client.delete(f"{API}/{sid}", headers=user("carol"))).status_code == 204


async def test_a_second_run_changes_nothing_and_a_deleted_session_stays_deleted(
    tmp_path: Path, source: Redis, redis: Redis, redis_url: str, client: httpx.AsyncClient
) -> None:
    first = await write(source, record("dave", title="a", messages=[message("user", "x", at(9))]))
    second = await write(source, record("dave", title="b", client_id="c"))
    assert (await run(tmp_path, redis_url))[0] == 0
    before = await snapshot(redis)

    code, summary, _ = await run(tmp_path, redis_url)
    assert code == 0
    assert summary["imported"] == 0
    assert sorted(s["key"] for s in summary["skipped"]) == sorted(
        [f"session:{first}", f"session:{second}"]
    )
    assert {s["reason"] for s in summary["skipped"]} == {"already imported"}
    assert await snapshot(redis) == before

    assert (await client.delete(f"{API}/{first}", headers=user("dave"))).status_code == 204
    assert (await run(tmp_path, redis_url))[1]["imported"] == 0
    assert (await client.get(f"{API}/{first}", headers=user("dave"))).status_code == 404


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key of the service's db with its content and whether it has a TTL."""
    out: dict[str, Any] = {}
    async for key in redis.scan_iter(count=500):
        kind = await redis.type(key)
        if kind == "hash":
            value: Any = await redis.hgetall(key)
        elif kind == "stream":
            value = await redis.xrange(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = await redis.get(key)
        out[key] = (kind, value, await redis.pttl(key) > 0)
    return out


async def test_unreadable_records_are_reported_never_guessed(
    tmp_path: Path, source: Redis, redis: Redis, redis_url: str
) -> None:
    good = await write(source, record("erin", title="fine"))
    broken = {
        "not-json": "{not json",
        "not-object": "[1, 2]",
        "no-user": json.dumps({k: v for k, v in record("x").items() if k != "user_id"}),
        "unknown-status": json.dumps(record("erin", status="resolved")),
        "naive-time": json.dumps({**record("erin"), "created_at": "2025-11-15T10:30:00"}),
        "bad-role": json.dumps(record("erin", messages=[message("tool", "x", at(1))])),
    }
    keys = {}
    for name, value in broken.items():
        data = json.loads(value) if value.startswith('{"') else None
        sid = data["session_id"] if data else str(uuid.uuid4())
        keys[name] = f"session:{sid}"
        await source.set(keys[name], value, ex=WEEK)
    await source.set("session:not-a-uuid", json.dumps(record("erin")), ex=WEEK)
    await source.hset(f"session:{uuid.uuid4()}", "a", "b")
    deleted = await write(source, record("erin", status="deleted"))

    code, summary, _ = await run(tmp_path, redis_url)
    assert code == 1, "a failed record makes the run exit 1"
    assert summary["imported"] == 1
    failed = {f["key"]: f["reason"] for f in summary["failed"]}
    assert set(keys.values()) | {"session:not-a-uuid"} <= set(failed)
    assert len(failed) == len(keys) + 2
    assert failed[keys["not-json"]].startswith("not JSON")
    assert failed[keys["no-user"]] == "missing user_id"
    assert "resolved" in failed[keys["unknown-status"]]
    assert "no UTC offset" in failed[keys["naive-time"]]
    assert "role 'tool'" in failed[keys["bad-role"]]
    assert [s["key"] for s in summary["skipped"]] == [f"session:{deleted}"]
    stored = {key async for key in redis.scan_iter(match=SESSION_RECORDS)}
    assert [key.rsplit(":", 1)[1] for key in stored] == [good]


async def test_dry_run_writes_nothing(
    tmp_path: Path, source: Redis, redis: Redis, redis_url: str
) -> None:
    await write(source, record("frank", messages=[message("user", "x", at(2))]))
    await write(source, record("frank", title="second"))
    code, summary, err = await run(tmp_path, redis_url, "--dry-run")
    assert code == 0
    assert (summary["dry_run"], summary["imported"], summary["failed"]) == (True, 2, [])
    assert "would import 2" in err
    assert await redis.dbsize() == 0


@pytest.mark.slow
async def test_a_long_conversation_is_staged_in_chunks_and_read_back_whole(
    tmp_path: Path, source: Redis, redis_url: str, client: httpx.AsyncClient
) -> None:
    start = at(600)
    conversation = [
        message("user" if n % 2 == 0 else "assistant", f"m{n}", start) for n in range(1203)
    ]
    sid = await write(source, record("gina", messages=conversation))
    assert (await run(tmp_path, redis_url))[1]["imported"] == 1
    messages = await all_messages(client, sid, "gina")
    assert [m["content"] for m in messages] == [f"m{n}" for n in range(1203)]
    assert messages[-1]["message_id"] == "msg_0000001203"
    stats = await client.get(f"{API}/{sid}", headers=user("gina"))
    assert stats.json()["message_count"] == 1203


async def test_the_most_recent_session_keeps_the_client_id_whatever_the_order(
    tmp_path: Path, source: Redis, redis_url: str, client: httpx.AsyncClient
) -> None:
    ids = [
        await write(source, record("hal", client_id="ext", last_activity=at(minutes)))
        for minutes in (50, 5, 30)
    ]
    assert (await run(tmp_path, redis_url))[1]["imported"] == 3
    resumed = await client.post(API, json={"client_id": "ext"}, headers=user("hal"))
    assert resumed.json()["session_id"] == ids[1]


@pytest.mark.parametrize("policy", ["reject", "evict_oldest"])
async def test_the_session_limit_is_respected_and_an_import_never_evicts(
    tmp_path: Path, source: Redis, redis_url: str, make_client: ClientFactory, policy: str
) -> None:
    for _ in range(3):
        await write(source, record("ivy"))
    code, out, err = await cli(
        tmp_path, "import-legacy", "--source", redis_url.rsplit("/", 1)[0],
        REDIS_URL=redis_url, MAX_SESSIONS_PER_USER="2", SESSION_LIMIT_POLICY=policy,
    )  # fmt: skip
    summary = json.loads(out)
    assert code == 0, err
    assert summary["imported"] == 2
    assert [s["reason"] for s in summary["skipped"]] == ["the user is at MAX_SESSIONS_PER_USER"]
    async with make_client() as client:
        assert (await client.get(API, headers=user("ivy"))).json()["total"] == 2


async def test_an_unreadable_source_ends_the_run_with_a_summary_naming_it(
    tmp_path: Path, redis_url: str
) -> None:
    with redis_server(tmp_path / "original", "--requirepass", "theirs") as original:
        code, out, err = await cli(
            tmp_path, "import-legacy", "--source", f"redis://127.0.0.1:{original.port}",
            REDIS_URL=redis_url,
        )  # fmt: skip
    assert code == 1
    summary = json.loads(out)
    assert summary["error"].startswith(f"cannot read --source (redis://127.0.0.1:{original.port}")
    assert "REDIS_PASSWORD" not in err
    assert "Traceback" not in err


async def test_an_admin_command_names_a_refused_redis_password(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", "--requirepass", "right") as server:
        code, out, err = await cli(
            tmp_path, "cleanup", REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port),
            REDIS_PASSWORD="wrong",
        )  # fmt: skip
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("fm-session-service: invalid REDIS_PASSWORD")
    assert out == ""


def test_serving_never_loads_the_import() -> None:
    """The one-time import is its own package; the app and the CLI's parser leave it out."""
    probe = (
        "import sys\n"
        "from session_service.app import create_app\n"
        "from session_service.cli import _parser\n"
        "from session_service.config import Settings\n"
        "create_app(Settings(_env_file=None, log_level='ERROR'))\n"
        "_parser()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('session_legacy'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "session_legacy"  # the package's constants, nothing more
