"""The connection a worker's change-feed subscription holds, outside the pool.

One per worker (store/watch.py): watchers share it and never hold a Redis
connection of their own.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Connection
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool

from session_service.store.connection.client import RedisClient


async def subscriber(client: RedisClient, attempt: int) -> Any:
    """A new connection, outside the pool, for a worker's feed subscription.

    Standalone: another connection to the same server. Sentinel: to the master the
    sentinels name now (a failover closes it, and the next attempt asks again).
    Cluster: to one node, the next one on each attempt; PUBLISH reaches every node
    of a Cluster, so any of them hears every notification.
    """
    if isinstance(client, RedisCluster):
        await client.initialize()
        nodes = client.get_nodes()
        node = nodes[attempt % len(nodes)]
        # A node's connection settings already name its host and port.
        return node.connection_class(**node.connection_kwargs)
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        host, port = await pool.sentinel_manager.discover_master(pool.service_name)
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if k != "connection_pool"}
        # The pool's own class asks the sentinels on every connect; this one connects to
        # the address just asked for, with the pool's settings: over TLS when the pool's
        # connections are (rediss://), whose ssl_* settings a plain Connection refuses.
        tls = issubclass(pool.connection_class, SSLConnection)
        return (SSLConnection if tls else Connection)(host=host, port=port, **kwargs)
    return pool.make_connection()  # type: ignore[no-untyped-call]
