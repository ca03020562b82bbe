"""The connection pool waits for a free connection, but never forever."""

from __future__ import annotations

import asyncio

import pytest
from redis import exceptions as rx
from redis.asyncio import Redis

from session_service.store.connection import build_client
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
