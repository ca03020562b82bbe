"""WAIT on the connection that wrote: after a script, or after a read barrier."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from session_service.store.connection.client import RedisClient
from session_service.store.connection.cluster import on_owner


def barrier_command(barrier: str) -> tuple[Any, ...]:
    """A replicated command that moves the connection's replication offset past
    everything the server holds now, so the WAIT after it confirms all of it (a
    read-only command or a script that wrote nothing leaves the offset where the
    connection's last write put it, and WAIT would confirm only that).

    SPUBLISH to the user's shard channel, which nobody subscribes to: it is
    replicated like a write, but stores nothing, is allowed when Redis is out of
    memory (a SET would be refused, and every read with it), and on Cluster stays
    on the user's shard (PUBLISH would go to every node)."""
    return ("SPUBLISH", barrier, "")


async def eval_and_wait(
    client: RedisClient,
    sha: str,
    key: str,
    args: list[str | int],
    replicas: int,
    timeout_ms: int,
    barrier: str | None = None,
) -> tuple[Any, Any]:
    """EVALSHA on `key`, then WAIT on the same connection, in one round trip.

    WAIT counts only the writes of its own connection, so both commands must share
    one. Each element of the answer is the command's reply or the exception it
    raised. redis-py's cluster pipeline would route the keyless WAIT to another
    node (and re-send a MOVED script alone), so on Cluster both go to the key's
    primary over one of that node's connections. With a `barrier` key (in the
    script's slot), a barrier write goes between them: the WAIT then also confirms
    what the script read, even when it wrote nothing.
    """
    commands: list[tuple[Any, ...]] = [("EVALSHA", sha, 1, key, *args)]
    if barrier is not None:
        commands.append(barrier_command(barrier))
    commands.append(("WAIT", replicas, timeout_ms))
    replies = await _on_one_connection(client, key, commands)
    if barrier is not None and isinstance(replies[1], Exception):
        return replies[0], replies[1]  # the WAIT would confirm only the script's writes
    return replies[0], replies[-1]


async def confirm(client: RedisClient, barrier: str, replicas: int, timeout_ms: int) -> Any:
    """A read barrier: how many replicas hold everything the barrier's node held when
    it ran (WAIT's answer, or the exception the barrier or the WAIT raised). On
    Cluster a MOVED is not followed: the new owner never served the answer."""
    commands = [barrier_command(barrier), ("WAIT", replicas, timeout_ms)]
    written, acked = await _on_one_connection(client, barrier, commands, follow_moved=False)
    return written if isinstance(written, Exception) else acked


async def _on_one_connection(
    client: RedisClient, key: str, commands: list[tuple[Any, ...]], follow_moved: bool = True
) -> list[Any]:
    if isinstance(client, RedisCluster):
        return await on_owner(client, key, commands, follow_moved=follow_moved)
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))
