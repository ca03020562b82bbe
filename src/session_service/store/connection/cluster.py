"""Cluster: failures that read as an unavailable store, and scripts run on their key's owner."""

from __future__ import annotations

import contextlib
from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster

from session_service.store.connection.pool import closed_by_server
from session_service.store.wire import cluster_nodes_pack_with_hiredis


class ClusterUnavailable(rx.ConnectionError):
    """The Cluster cannot serve: no reachable node, or the key's slot is not covered."""


def _unavailable(exc: rx.RedisClusterException) -> ClusterUnavailable:
    return ClusterUnavailable(str(exc))


class ServiceClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except rx.RedisClusterException as exc:
            raise _unavailable(exc) from exc


_SCRIPTS = ("EVAL", "EVALSHA")


class ServiceCluster(RedisCluster):
    """RedisCluster whose "cannot serve" failures are RedisErrors (so 503s).

    Scripts go through `on_owner`, which does not follow ASK redirects: the
    service's scripts derive their keys from KEYS[1], so during a slot migration
    following ASK would run them against half-moved data (a wrong 404, or a
    duplicate session); they answer 503 until the slot has moved instead.

    redis-py raises `RedisClusterException`, which is not a `RedisError`, when no
    node is reachable or a slot is uncovered (a Cluster down at start, a shard
    lost); every caller here treats `RedisError` as the storage being unavailable.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cluster_nodes_pack_with_hiredis(self.nodes_manager)

    async def initialize(self, *args: Any, **kwargs: Any) -> ServiceCluster:
        try:
            await super().initialize(*args, **kwargs)
        except rx.RedisClusterException as exc:
            raise _unavailable(exc) from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            if str(args[0]).upper() in _SCRIPTS and int(args[2]) > 0:
                (reply,) = await on_owner(self, str(args[3]), [args])
                if isinstance(reply, Exception):
                    raise reply
                return reply
            return await super().execute_command(*args, **kwargs)
        except rx.RedisClusterException as exc:
            raise _unavailable(exc) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        return ServiceClusterPipeline(self, transaction)  # type: ignore[abstract]


async def on_owner(
    client: RedisCluster, key: str, commands: list[tuple[Any, ...]], follow_moved: bool = True
) -> list[Any]:
    """Send `commands` over one connection to the primary serving `key`.

    Answers each command's reply or exception. MOVED is followed (the slot has a
    new owner) unless `follow_moved` is false (a read barrier must reach the node
    the answer was read from, or none), but ASK is not: during a slot migration a
    script's undeclared keys may be split between two nodes, so it answers 503
    until the slot has moved.
    """
    await client.initialize()
    for _ in range(2 if follow_moved else 1):
        try:
            node = client.get_node_from_key(key)
        except rx.SlotNotCoveredError as exc:
            await _relearn_slots(client)
            raise _unavailable(exc) from exc
        assert node is not None
        pending = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
        await _reconnect_if_closed(node)
        try:
            await node.execute_pipeline(pending)
        except (rx.ConnectionError, rx.TimeoutError):
            # As RedisCluster does: drop this node's connections and relearn the slots.
            node.update_active_connections_for_reconnect()
            await node.disconnect_free_connections()
            client.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
            await _relearn_slots(client)
            raise
        first = pending[0].result
        if isinstance(first, rx.MovedError):
            await client.nodes_manager.move_slot(first)
            continue
        if isinstance(first, rx.ClusterDownError | rx.SlotNotCoveredError):
            await _relearn_slots(client)
        break
    return [command.result for command in pending]


async def _reconnect_if_closed(node: ClusterNode) -> None:
    # The connection execute_pipeline takes next: a write sent on a closed one would
    # fail with an unknown outcome (a 503); nothing is sent yet, so reconnect it now.
    free = getattr(node, "_free", None)
    if free and closed_by_server(free[0]):
        await free[0].disconnect()


async def _relearn_slots(client: RedisCluster) -> None:
    # On failure the next request tries again; this one answers 503 anyway.
    with contextlib.suppress(rx.RedisError):
        await client.nodes_manager.initialize()
