"""hiredis packs commands for every mode, byte for byte as redis-py would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.exceptions import DataError

from session_service.store.connection.client import build_client
from session_service.store.keys import Keys
from session_service.store.wire import HiredisPacking, hiredis_packing
from tests.conftest import make_settings

PACKED = hiredis_packing(Connection)


def both(*args: Any) -> tuple[list[bytes], list[bytes]]:
    ours = PACKED(encoding="utf-8")
    theirs = Connection(encoding="utf-8")
    return b"".join(ours.pack_command(*args)), b"".join(theirs.pack_command(*args))


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 1, "fm:{dXNlcg}:", "", "héllo ✓ 🙂", -7, 0, 2**63),
        ("HGETALL", b"fm:{x}:s:\x00\xff"),
        ("SET", "k", "v" * 100_000),  # redis-py splits a large value; the bytes are the same
        ("ZADD", "k", 1.5, "m"),  # floats: redis-py's own encoding
        ("CONFIG GET", "maxmemory"),  # a name with a space: redis-py splits it
        ("SET", "k", memoryview(b"abc")),
    ],
    ids=["script", "bytes", "large", "float", "spaced-name", "memoryview"],
)
def test_the_packed_bytes_are_redis_pys(args: tuple[Any, ...]) -> None:
    ours, theirs = both(*args)
    assert ours == theirs


def test_what_redis_py_refuses_is_still_refused() -> None:
    with pytest.raises(DataError):
        PACKED().pack_command("SET", "k", True)
    with pytest.raises(DataError):
        PACKED().pack_command("SET", "k", None)  # type: ignore[arg-type]


def test_the_store_sends_real_commands_through_it(redis_url: str) -> None:
    client = build_client(make_settings(redis_url), redis_url)
    assert isinstance(client, Redis)
    assert issubclass(client.connection_pool.connection_class, HiredisPacking)


async def test_a_round_trip_through_hiredis_packing(redis_url: str) -> None:
    client = build_client(make_settings(redis_url), redis_url)
    key = Keys("fm").session("wire-user", "sess_wire")
    value = "héllo ✓ " * 2_000
    await client.hset(key, mapping={"t": value, "n": 42})
    assert await client.hgetall(key) == {"t": value, "n": "42"}
    await client.delete(key)
    await client.aclose()


@pytest.mark.parametrize(
    ("mode", "url"),
    [
        ({"redis_mode": "sentinel", "redis_sentinel_hosts": ["127.0.0.1:1"]}, "redis://x/0"),
        ({"redis_mode": "cluster", "redis_cluster_nodes": ["127.0.0.1:1"]}, "redis://x/0"),
        ({"redis_mode": "cluster", "redis_cluster_nodes": ["127.0.0.1:1"]}, "rediss://x/0"),
        ({}, "rediss://127.0.0.1:1/0"),
    ],
    ids=["sentinel", "cluster", "cluster-tls", "standalone-tls"],
)
async def test_every_mode_packs_with_hiredis(mode: dict[str, object], url: str) -> None:
    client = build_client(make_settings(url, **mode), url)
    if isinstance(client, RedisCluster):
        classes = [client.nodes_manager.connection_kwargs["connection_class"]]
        classes += [n.connection_class for n in client.nodes_manager.startup_nodes.values()]
    else:
        classes = [client.connection_pool.connection_class]
    assert all(issubclass(cls, HiredisPacking) for cls in classes)
    if url.startswith("rediss://"):
        assert all(issubclass(cls, SSLConnection) for cls in classes)
    await client.aclose()
