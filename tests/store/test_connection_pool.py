"""The connection pool waits for a free connection, but never forever."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from session_service.store.connection.client import build_client
from tests.conftest import make_settings


def _one_connection(redis_url: str, **settings: Any) -> Redis:
    """A standalone client whose pool holds a single connection."""
    client = build_client(make_settings(redis_url, redis_max_connections=1, **settings), redis_url)
    assert isinstance(client, Redis)
    return client


async def test_a_request_waits_for_a_connection_released_meanwhile(redis_url: str) -> None:
    client = _one_connection(redis_url)
    pool = client.connection_pool
    held = await pool.get_connection()

    async def give_back_soon() -> None:
        await asyncio.sleep(0.2)
        await pool.release(held)

    releaser = asyncio.create_task(give_back_soon())
    assert await client.ping() is True  # waited for the release instead of failing
    await releaser
    await client.aclose()


async def test_an_exhausted_pool_fails_after_the_timeout_instead_of_hanging(
    redis_url: str,
) -> None:
    client = _one_connection(redis_url, redis_timeout_seconds=0.3)
    held = await client.connection_pool.get_connection()
    with pytest.raises(rx.ConnectionError):
        await asyncio.wait_for(client.ping(), timeout=5)
    await client.connection_pool.release(held)
    assert await client.ping() is True
    await client.aclose()


@pytest.mark.parametrize(
    "mode",
    [
        {},
        {"redis_mode": "sentinel", "redis_sentinel_hosts": ["127.0.0.1:1"]},
        {"redis_mode": "cluster", "redis_cluster_nodes": ["127.0.0.1:1"]},
    ],
    ids=["standalone", "sentinel", "cluster"],
)
async def test_no_mode_lets_redis_py_send_a_command_twice(mode: dict[str, object]) -> None:
    """redis-py's retry re-sends a command whose reply was lost; every mode turns it off
    (store/retries.py decides where the service retries: connects and pure reads)."""
    url = "redis://127.0.0.1:1/0"
    client = build_client(make_settings(url, **mode), url)
    policies = [client.get_retry()] if not isinstance(client, RedisCluster) else [client.retry]
    if isinstance(client, Redis):
        policies.append(client.connection_pool.connection_kwargs["retry"])
    assert all(policy is not None and policy.get_retries() == 0 for policy in policies)
    await client.aclose()


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.001)


async def _ping(connection: Any) -> None:
    await connection.send_command("PING")
    assert await connection.read_response() == "PONG"


async def test_a_waiting_request_is_not_overtaken_by_a_later_one(redis_url: str) -> None:
    """First come, first served: a request that gives its connection back and asks
    again at once (as one with several commands does) queues behind the one already
    waiting, which would otherwise starve into a 503 while the later requests succeed."""
    client = _one_connection(redis_url, redis_timeout_seconds=3)
    pool = client.connection_pool
    held = await pool.get_connection()
    waiting = asyncio.create_task(client.ping())
    await _until(lambda: pool.waiting == 1, "the request never queued")
    later_served = 0
    while not waiting.done():
        await pool.release(held)
        held = await pool.get_connection()
        await _ping(held)
        later_served += 1
    assert waiting.result() is True
    assert later_served == 1  # the one that queued behind it
    await pool.release(held)
    await client.aclose()


async def test_a_request_cancelled_as_it_is_handed_a_connection_passes_it_on(
    redis_url: str,
) -> None:
    """A request that gives up (its client left) at the moment a connection is
    released to it must not take the release with it: the next in line is served."""
    client = _one_connection(redis_url, redis_timeout_seconds=3)
    pool = client.connection_pool
    held = await pool.get_connection()
    first = asyncio.create_task(client.ping())
    await _until(lambda: pool.waiting == 1, "the first request never queued")
    second = asyncio.create_task(client.ping())
    await _until(lambda: pool.waiting == 2, "the second request never queued")
    await pool.release(held)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is True
    assert pool.waiting == 0
    await client.aclose()
