"""Building the one Redis client of a process from the settings, for every mode."""

from __future__ import annotations

import ssl
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from session_service.config import RedisMode, Settings
from session_service.store.connection.cluster import ServiceCluster
from session_service.store.connection.pool import WaitingConnectionPool
from session_service.store.connection.sentinel import (
    SentinelMaster,
    StableSentinel,
    WaitingSentinelPool,
)
from session_service.store.retries import never_resend

RedisClient = Redis | RedisCluster


def _common(settings: Settings) -> dict[str, Any]:
    # redis-py never re-sends a command: a write whose reply was lost may have run
    # (store/retries.py says where the service itself retries). Cluster reads this
    # `retry` as its own policy too, so it re-sends nothing either.
    return {
        "decode_responses": True,
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": min(
            settings.redis_timeout_seconds, settings.redis_connect_timeout_seconds
        ),
        "retry": never_resend(),
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
