"""Building the one Redis client (and its pool) of a process, for every mode."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any

from redis import exceptions as rx
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from session_service.config import RedisMode, Settings
from session_service.store.retries import again_on_connection_error, never_resend
from session_service.store.wire import cluster_nodes_pack_with_hiredis, hiredis_packing

RedisClient = Redis | RedisCluster


class WaitForRelease(ConnectionPool):
    """A pool that queues a request for a free connection (up to `wait_timeout`)
    instead of failing it with "Too many connections" (a 503) under contention.

    redis-py's BlockingConnectionPool does the same behind an asyncio.Condition on
    every checkout; here a free connection costs nothing extra, and only a request
    that finds the pool exhausted waits for the next release.
    """

    def __init__(self, *args: Any, wait_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_class = hiredis_packing(self.connection_class)
        self._wait_timeout = wait_timeout
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """redis-py 5.0's checkout: take a connection, make sure it is usable.

        Newer redis-py versions also take a lock, bind the call's arguments for a
        deprecation check and record OpenTelemetry pool gauges on every command
        (7% of a get's CPU in a py-spy profile). Taking a connection has no await,
        so nothing can interleave with it in one event loop.
        """
        if not self.can_get_connection():
            await self._wait_for_release()
        # Connecting sends nothing of the command yet, so a refused or reset connect
        # is retried here; the command itself is never re-sent (store/retries.py).
        return await again_on_connection_error(self._checkout)

    async def _checkout(self) -> Any:
        connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        if _closed_by_server(connection):
            # The server closed it while it sat in the pool. redis-py skips this check
            # when maintenance notifications are on (its default), and a write sent on
            # it would fail with an unknown outcome; reconnect before sending anything.
            try:
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def _wait_for_release(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_timeout
        while not self.can_get_connection():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise rx.ConnectionError("No Redis connection became free in time") from None
            finally:
                if not waiter.done():
                    waiter.cancel()

    async def release(self, connection: Any) -> None:
        # A connection that must reconnect (redis-py >= 6) is closed before it is
        # offered again; the pool's counts change only after that, in one step.
        should_reconnect = getattr(connection, "should_reconnect", None)
        if should_reconnect is not None and should_reconnect():
            await connection.disconnect()
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break


class WaitingConnectionPool(WaitForRelease):
    pass


class WaitingSentinelPool(WaitForRelease, SentinelConnectionPool):
    pass


def _common(settings: Settings) -> dict[str, Any]:
    # redis-py never re-sends a command: a write whose reply was lost may have run
    # (store/retries.py says where the service itself retries). Cluster reads this
    # `retry` as its own policy too, so it re-sends nothing either.
    return {
        "decode_responses": True,
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": min(settings.redis_timeout_seconds, 1.0),
        "retry": never_resend(),
        "health_check_interval": 0,
    }


class StableSentinel(Sentinel):
    """Sentinel discovery that never reorders the sentinel list.

    redis-py swaps the answering sentinel to the front after an await; concurrent
    discoveries (every request during a failover) then race and can drop a
    sentinel from the list, losing it for discovery and leaking its connections.
    """

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        failures = []
        for sentinel in tuple(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()
            except (rx.ConnectionError, rx.TimeoutError) as exc:
                # The text, not redis-py's repr (its category only): a TLS failure must
                # reach the start-up check (store/probe.py) to be named there.
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            state = masters.get(service_name) if isinstance(masters, dict) else None
            if state and self.check_master_state(state, service_name):
                return state["ip"], int(state["port"])
        raise MasterNotFoundError(f"No master found for {service_name!r}: {', '.join(failures)}")


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


class SentinelMaster(Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
        await super().aclose(close_connection_pool)
        for sentinel in manager.sentinels:
            await sentinel.aclose()


def _tls(settings: Settings) -> dict[str, Any]:
    return {
        "ssl_ca_certs": settings.redis_tls_ca_certs,
        "ssl_certfile": settings.redis_tls_certfile,
        "ssl_keyfile": settings.redis_tls_keyfile,
        "ssl_cert_reqs": ssl.CERT_REQUIRED if settings.redis_tls_verify else ssl.CERT_NONE,
    }


def describe(settings: Settings, url: str | None) -> str:
    """A log- and /ready-friendly name of the store, without credentials."""
    if settings.redis_mode is RedisMode.SENTINEL:
        return f"sentinel:{settings.redis_master_set}@{','.join(settings.redis_sentinel_hosts)}"
    if settings.redis_mode is RedisMode.CLUSTER:
        return "cluster:" + (",".join(settings.redis_cluster_nodes) or _strip(url or ""))
    return _strip(url or "")


def _strip(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


def _credentials(url: str | None, *names: str) -> dict[str, Any]:
    """Connection settings (user, password, db) from a redis:// URL."""
    if not url:
        return {}
    parsed: dict[str, Any] = dict(parse_url(url))
    return {name: parsed[name] for name in names if parsed.get(name) is not None}


def build_client(settings: Settings, url: str | None) -> RedisClient:
    common = _common(settings)
    if settings.redis_mode is RedisMode.SENTINEL:
        hosts = [
            (h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in settings.redis_sentinel_hosts
        ]
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": settings.redis_timeout_seconds,
            "socket_connect_timeout": common["socket_connect_timeout"],
            # redis-py's default retries with backoff (seconds each); the next
            # sentinel in the list is the retry.
            "retry": Retry(NoBackoff(), 0),
        }
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password
        extra = _credentials(url, "username", "password", "db")
        if url and url.startswith("rediss://"):
            # TLS to the sentinels and to the master they name, with the same
            # REDIS_TLS_* settings: a password never crosses the network in clear.
            sentinel_kwargs.update(ssl=True, **_tls(settings))
            extra.update(ssl=True, **_tls(settings))
        sentinel = StableSentinel(hosts, sentinel_kwargs=sentinel_kwargs, **common, **extra)
        master: Redis = sentinel.master_for(
            settings.redis_master_set,
            redis_class=SentinelMaster,
            connection_pool_class=WaitingSentinelPool,
            max_connections=settings.redis_max_connections,
            wait_timeout=settings.redis_timeout_seconds,
        )
        return master
    if settings.redis_mode is RedisMode.CLUSTER:
        cluster_kwargs = dict(common)
        cluster_kwargs.pop("health_check_interval")
        nodes = [
            ClusterNode(h.rpartition(":")[0], int(h.rpartition(":")[2]))
            for h in settings.redis_cluster_nodes
        ]
        if url and url.startswith("rediss://"):
            cluster_kwargs.update(_tls(settings))
        if nodes:
            # REDIS_URL, when also set, carries the credentials and the scheme (TLS).
            cluster_kwargs.update(_credentials(url, "username", "password"))
            if url and url.startswith("rediss://"):
                cluster_kwargs["ssl"] = True
            return ServiceCluster(
                startup_nodes=nodes,
                max_connections=settings.redis_max_connections,
                **cluster_kwargs,
            )
        assert url is not None
        return ServiceCluster.from_url(
            url, max_connections=settings.redis_max_connections, **cluster_kwargs
        )
    assert url is not None
    kwargs = dict(common)
    if url.startswith("rediss://"):
        kwargs.update(_tls(settings))
    pool = WaitingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        wait_timeout=settings.redis_timeout_seconds,
        **kwargs,
    )
    return Redis.from_pool(pool)


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


async def on_owner(client: RedisCluster, key: str, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send `commands` over one connection to the primary serving `key`.

    Answers each command's reply or exception. MOVED is followed (the slot has a
    new owner) but ASK is not: during a slot migration a script's undeclared keys
    may be split between two nodes, so it answers 503 until the slot has moved.
    """
    await client.initialize()
    for _ in range(2):
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


def _closed_by_server(connection: Any) -> bool:
    """The server closed this pooled connection while it was idle (its reader saw EOF)."""
    reader = getattr(connection, "_reader", None)
    return reader is not None and bool(reader.at_eof())


async def _reconnect_if_closed(node: ClusterNode) -> None:
    # The connection execute_pipeline takes next: a write sent on a closed one would
    # fail with an unknown outcome (a 503); nothing is sent yet, so reconnect it now.
    free = getattr(node, "_free", None)
    if free and _closed_by_server(free[0]):
        await free[0].disconnect()


async def _relearn_slots(client: RedisCluster) -> None:
    # On failure the next request tries again; this one answers 503 anyway.
    with contextlib.suppress(rx.RedisError):
        await client.nodes_manager.initialize()
