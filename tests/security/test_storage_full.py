"""Out of memory: Redis refuses writes (noeviction) and the API answers 507, writing nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from tests.conftest import make_settings, running_app, user
from tests.helpers import API, keys_of, user_keys
from tests.paging import all_messages
from tests.servers import RedisProcess, redis_server

KEYS = Keys("fms")
HEADROOM = 1024 * 1024  # bytes of data the small server accepts


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with redis_server(tmp_path_factory.mktemp("oom"), "--maxmemory-policy", "noeviction") as s:
        yield s


@pytest.fixture
async def small_redis(small_server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(small_server.url, decode_responses=True)
    await client.config_set("maxmemory", 0)
    await client.flushall()
    used = int((await client.info("memory"))["used_memory"])
    await client.config_set("maxmemory", used + HEADROOM)
    yield client
    await client.config_set("maxmemory", 0)
    await client.flushall()
    await client.aclose()


@pytest.fixture
async def full_client(
    small_redis: Redis, small_server: RedisProcess
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(small_server.url)) as client:
        yield client


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key with its type and size: enough to see any half-written change."""
    out: dict[str, Any] = {}
    async for key in redis.scan_iter(match="*", count=1000):
        kind = await redis.type(key)
        if kind == "hash":
            out[key] = (kind, await redis.hgetall(key))
        elif kind == "stream":
            out[key] = (kind, await redis.xlen(key))
        elif kind == "zset":
            out[key] = (kind, await redis.zrange(key, 0, -1, withscores=True))
        else:
            out[key] = (kind, await redis.get(key))
    return out


async def fill_with_sessions(client: httpx.AsyncClient, user_id: str) -> httpx.Response:
    filler = {f"k{i}": "v" * 200 for i in range(40)}
    for i in range(10_000):
        body = {"title": f"s{i}", "metadata": filler, "client_id": f"c{i}"}
        response = await client.post(
            API, json=body, headers=user(user_id, **{"Idempotency-Key": f"k{i}"})
        )
        if response.status_code != 201:
            return response
    raise AssertionError("storage never filled up")


async def assert_consistent(client: httpx.AsyncClient, redis: Redis, user_id: str) -> None:
    """Index, records and conversations agree: nothing is half-written."""
    owned = user_keys(user_id)
    records = {
        sid
        async for k in redis.scan_iter(match=KEYS.user_pattern(user_id))
        if (sid := owned.session_of(k)) and k == keys_of(user_id, sid).session
    }
    indexed = set(await redis.zrange(KEYS.expiry(user_id), 0, -1))
    assert records == indexed
    listed = await client.get(f"{API}?limit=100&include_archived=true", headers=user(user_id))
    assert listed.status_code == 200
    assert listed.json()["total"] == len(records)
    for sid in records:
        count = int(await redis.hget(keys_of(user_id, sid).session, "mc") or 0)
        assert await redis.xlen(keys_of(user_id, sid).messages) == count


async def test_full_storage_answers_507_and_writes_nothing(
    full_client: httpx.AsyncClient, small_redis: Redis
) -> None:
    refused = await fill_with_sessions(full_client, "filler")
    assert refused.status_code == 507, refused.text
    assert refused.json()["code"] == "storage_full"
    await assert_consistent(full_client, small_redis, "filler")

    before = await snapshot(small_redis)
    sid = next(iter(k for k in before if ":s:" in k)).rsplit(":", 1)[1]
    attempts = [
        await full_client.post(API, json={"title": "more"}, headers=user("filler")),
        await full_client.post(API, json={"title": "x"}, headers=user("newcomer")),
        await full_client.post(
            f"{API}/{sid}/messages",
            json={"role": "user", "content": "m" * 60_000},
            headers=user("filler"),
        ),
        await full_client.post(
            f"{API}/{sid}/cases", json={"case_id": "c" * 128}, headers=user("filler")
        ),
    ]
    for response in attempts:
        assert response.status_code == 507, response.text
        assert response.json() == {
            "detail": "Session storage is full; nothing was written",
            "code": "storage_full",
        }
    assert await snapshot(small_redis) == before

    # Reads still work, and deletes (which free memory) are still accepted.
    assert (await full_client.get(f"{API}/{sid}", headers=user("filler"))).status_code == 200
    url = f"{API}/{sid}"
    assert (await full_client.delete(url, headers=user("filler"))).status_code == 204
    assert (await full_client.get(url, headers=user("filler"))).status_code == 404
    await assert_consistent(full_client, small_redis, "filler")


async def test_appends_stop_cleanly_when_full(
    full_client: httpx.AsyncClient, small_redis: Redis
) -> None:
    created = await full_client.post(API, json={"title": "chat"}, headers=user("talker"))
    sid = created.json()["session_id"]
    url = f"{API}/{sid}/messages"
    accepted = 0
    for i in range(10_000):
        message = {"role": "user", "content": f"{i} " + "m" * 8000}
        headers = user("talker", **{"Idempotency-Key": f"m{i}"})
        response = await full_client.post(url, json=message, headers=headers)
        if response.status_code != 201:
            break
        accepted += 1
    else:
        raise AssertionError("storage never filled up")
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "storage_full"
    assert accepted > 0
    session = (await full_client.get(f"{API}/{sid}", headers=user("talker"))).json()
    assert session["message_count"] == accepted
    total, messages = await all_messages(full_client, sid, "talker")
    assert total == accepted
    assert [m["content"].split(" ")[0] for m in messages] == [str(i) for i in range(accepted)]
    await assert_consistent(full_client, small_redis, "talker")


async def test_rate_limit_counter_refused_is_507_not_500(
    small_redis: Redis, small_server: RedisProcess
) -> None:
    settings = make_settings(small_server.url, rate_limit_per_minute=1000)
    async with running_app(settings) as client:
        assert (await client.get(API, headers=user("a"))).status_code == 200
        # Every write is now refused, the rate-limit counter's INCR included.
        await small_redis.config_set("maxmemory", 1)
        response = await client.get(API, headers=user("someone-new"))
        assert response.status_code == 507, response.text
        assert response.json()["code"] == "storage_full"
    # Reads alone do not need room.
    async with running_app(make_settings(small_server.url)) as client:
        assert (await client.get(API, headers=user("a"))).status_code == 200


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _eviction_warnings(url: str) -> list[str]:
    handler = _Warnings()
    logger = logging.getLogger("session_service")
    logger.addHandler(handler)
    try:
        async with running_app(make_settings(url)) as client:
            # The check runs in the background at start; a request waits for nothing.
            assert (await client.get("/ready")).status_code == 200
            for _ in range(500):
                if any("maxmemory-policy" in m for m in handler.messages):
                    break
                await asyncio.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    return [m for m in handler.messages if "maxmemory-policy" in m]


async def test_evicting_redis_is_warned_about(
    small_redis: Redis, small_server: RedisProcess
) -> None:
    await small_redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        warnings = await _eviction_warnings(small_server.url)
    finally:
        await small_redis.config_set("maxmemory-policy", "noeviction")
    assert len(warnings) == 1
    assert "allkeys-lru" in warnings[0]
    assert "noeviction" in warnings[0]
