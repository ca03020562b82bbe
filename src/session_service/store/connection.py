"""Building the one Redis client (and its pool) of a process, for every mode."""

from __future__ import annotations

import ssl
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff

from session_service.config import RedisMode, Settings

RedisClient = Redis | RedisCluster


def _common(settings: Settings) -> dict[str, Any]:
    # A short, bounded retry rides out a failover or a dropped connection while
    # keeping every request's worst case near REDIS_TIMEOUT_SECONDS.
    return {
        "decode_responses": True,
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": min(settings.redis_timeout_seconds, 1.0),
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        "health_check_interval": 0,
    }


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


def build_client(settings: Settings, url: str | None) -> RedisClient:
    common = _common(settings)
    if settings.redis_mode is RedisMode.SENTINEL:
        hosts = [
            (h.rpartition(":")[0], int(h.rpartition(":")[2])) for h in settings.redis_sentinel_hosts
        ]
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": settings.redis_timeout_seconds}
        if settings.redis_sentinel_password:
            sentinel_kwargs["password"] = settings.redis_sentinel_password
        extra: dict[str, Any] = {}
        if url:
            parsed = Redis.from_url(url)
            kw = parsed.connection_pool.connection_kwargs
            extra = {k: kw[k] for k in ("username", "password", "db") if kw.get(k) is not None}
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=sentinel_kwargs, **common, **extra
        )
        master: Redis = sentinel.master_for(
            settings.redis_master_set, max_connections=settings.redis_max_connections
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
            return RedisCluster(
                startup_nodes=nodes,
                max_connections=settings.redis_max_connections,
                **cluster_kwargs,
            )
        assert url is not None
        return RedisCluster.from_url(
            url, max_connections=settings.redis_max_connections, **cluster_kwargs
        )
    assert url is not None
    kwargs = dict(common)
    if url.startswith("rediss://"):
        kwargs.update(_tls(settings))
    # A blocking pool queues a request for a free connection (up to the timeout) instead
    # of failing it at once with "Too many connections" (503) under contention.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_seconds,
        **kwargs,
    )
    return Redis.from_pool(pool)
