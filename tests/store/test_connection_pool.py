"""The connection pool waits for a free connection, but never forever."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from session_service.store.connection.client import build_client
from tests.conftest import make_settings


async def test_a_request_waits_for_a_connection_released_meanwhile(redis_url: str) -> None:
    client = build_client(make_settings(redis_url, redis_max_connections=1), redis_url)
    assert isinstance(client, Redis)
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
    settings = make_settings(redis_url, redis_max_connections=1, redis_timeout_seconds=0.3)
    client = build_client(settings, redis_url)
    assert isinstance(client, Redis)
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
