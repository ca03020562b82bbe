"""Topologies for the `topology` tests: standalone, Sentinel and Cluster.

The Sentinel (1 master, 1 replica, 3 sentinels) and the Cluster (3 masters with
one replica each) start once per test run, only when a test asks for them. The
`app` fixture runs one test against each of the three, with a clean database;
on Sentinel and Cluster writes also wait for one replica (REDIS_MIN_REPLICAS_ACK=1).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, make_settings, running_app
from tests.topology.servers import (
    ClusterTopology,
    SentinelTopology,
    cluster_topology,
    sentinel_topology,
)

MODES = ("standalone", "sentinel", "cluster")


@pytest.fixture(scope="session")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelTopology]:
    with sentinel_topology(tmp_path_factory.mktemp("sentinel")) as topology:
        yield topology


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterTopology]:
    with cluster_topology(tmp_path_factory.mktemp("cluster")) as topology:
        yield topology


@dataclass
class Topology:
    mode: str
    settings: dict[str, Any]
    primaries: Callable[[], list[str]]  # redis:// URLs of every writable node

    async def flush(self) -> None:
        for url in self.primaries():
            async with Redis.from_url(url) as client:
                await client.flushall()

    async def key_counts(self) -> list[int]:
        """Number of keys on each primary."""
        counts = []
        for url in self.primaries():
            async with Redis.from_url(url) as client:
                counts.append(int(await client.dbsize()))
        return counts


# These tests are about every write reaching a replica, not about how fast: with
# both cores busy a replica can take longer than the 500 ms default to acknowledge.
# The tests of a missing replica (test_faults.py) build their own settings.
REPLICA_ACK_TIMEOUT_MS = 10_000


def _topology(mode: str, request: pytest.FixtureRequest) -> Topology:
    if mode == "sentinel":
        s: SentinelTopology = request.getfixturevalue("sentinel")
        return Topology(
            mode,
            {
                "redis_mode": "sentinel",
                "redis_sentinel_hosts": s.hosts,
                "redis_url": None,
                "redis_min_replicas_ack": 1,
                "redis_replica_ack_timeout_ms": REPLICA_ACK_TIMEOUT_MS,
            },
            lambda: [f"redis://127.0.0.1:{s.master_port()}/0"],
        )
    if mode == "cluster":
        c: ClusterTopology = request.getfixturevalue("cluster")
        return Topology(
            mode,
            {
                "redis_mode": "cluster",
                "redis_cluster_nodes": c.seeds,
                "redis_url": None,
                "redis_min_replicas_ack": 1,
                "redis_replica_ack_timeout_ms": REPLICA_ACK_TIMEOUT_MS,
            },
            lambda: [f"redis://127.0.0.1:{port}/0" for port in c.primaries()],
        )
    url: str = request.getfixturevalue("redis_url")
    return Topology(mode, {"redis_url": url}, lambda: [url])


@pytest.fixture(params=MODES)
async def topology(request: pytest.FixtureRequest) -> Topology:
    """One of the three topologies, with every primary flushed."""
    chosen = _topology(request.param, request)
    await chosen.flush()
    return chosen


@pytest.fixture
def make_app(topology: Topology) -> ClientFactory:
    """An app client on the chosen topology, with settings overrides."""

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        values = {**topology.settings, **overrides}
        url = values.pop("redis_url")
        return running_app(make_settings(url, **values))

    return factory


@pytest.fixture
async def app(make_app: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_app() as client:
        yield client
