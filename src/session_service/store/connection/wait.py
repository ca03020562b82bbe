"""A script and the WAIT that follows it, on one connection, in one round trip."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from session_service.store.connection.client import RedisClient
from session_service.store.connection.cluster import on_owner


async def eval_and_wait(
    client: RedisClient, sha: str, key: str, args: list[str | int], replicas: int, timeout_ms: int
) -> tuple[Any, Any]:
    """EVALSHA on `key`, then WAIT on the same connection, in one round trip.

    WAIT counts only the writes of its own connection, so both commands must share
    one. Each element of the answer is the command's reply or the exception it
    raised. redis-py's cluster pipeline would route the keyless WAIT to another
    node (and re-send a MOVED script alone), so on Cluster both go to the key's
    primary over one of that node's connections.
    """
    if isinstance(client, RedisCluster):
        return await _cluster_eval_and_wait(client, sha, key, args, replicas, timeout_ms)
    pipe = client.pipeline(transaction=False)
    pipe.evalsha(sha, 1, key, *args)
    pipe.execute_command("WAIT", replicas, timeout_ms)
    reply, acked = await pipe.execute(raise_on_error=False)
    return reply, acked


async def _cluster_eval_and_wait(
    client: RedisCluster,
    sha: str,
    key: str,
    args: list[str | int],
    replicas: int,
    timeout_ms: int,
) -> tuple[Any, Any]:
    reply, acked = await on_owner(
        client, key, [("EVALSHA", sha, 1, key, *args), ("WAIT", replicas, timeout_ms)]
    )
    return reply, acked
