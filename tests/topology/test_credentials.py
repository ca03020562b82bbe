"""REDIS_PASSWORD and REDIS_USERNAME also reach the data nodes in Sentinel and
Cluster modes (issue 12, item 1), against real password-protected servers.

The topologies are the smallest that show it (one master and one sentinel; a
one-node Cluster serving every slot), so they start quickly on a loaded box.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

from session_service.config import Settings
from session_service.store.embedded import find_server_binary
from session_service.store.keys import Keys
from session_service.store.probe import unusable_setting
from tests.conftest import create_session, running_app
from tests.servers import RedisProcess, free_port, wait_for_port
from tests.topology.servers import MASTER_SET, wait_until

PASSWORD = "data-node-secret"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, cleanup_interval_seconds=0, log_level="WARNING", **values)


@contextlib.contextmanager
def protected_sentinel(workdir: Path) -> Iterator[tuple[RedisProcess, int]]:
    """A password-protected master and one sentinel (quorum 1) that knows the password."""
    master = RedisProcess(workdir / "master", None, "--requirepass", PASSWORD).start()
    port = free_port()
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"logfile {workdir / 'sentinel.log'}\n"
        f"sentinel monitor {MASTER_SET} 127.0.0.1 {master.port} 1\n"
        f"sentinel auth-pass {MASTER_SET} {PASSWORD}\n"
    )
    sentinel = subprocess.Popen(
        [find_server_binary(), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield master, port
    finally:
        sentinel.kill()
        sentinel.wait()
        master.stop(hard=True)


@contextlib.contextmanager
def protected_cluster(workdir: Path) -> Iterator[RedisProcess]:
    """A one-node Cluster with a password, serving all 16384 slots."""
    node = RedisProcess(
        workdir,
        None,
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(free_port()),
        "--requirepass", PASSWORD,
    ).start()  # fmt: skip
    try:
        with redis.Redis(port=node.port, password=PASSWORD, decode_responses=True) as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            wait_until(
                lambda: "cluster_state:ok" in str(client.execute_command("CLUSTER", "INFO")),
                "the one-node cluster to serve every slot",
            )
        yield node
    finally:
        node.stop(hard=True)


async def test_sentinel_mode_authenticates_to_the_master_with_redis_password(
    tmp_path: Path,
) -> None:
    with protected_sentinel(tmp_path) as (master, sentinel_port):
        chosen = settings(
            redis_mode="sentinel",
            redis_sentinel_hosts=f"127.0.0.1:{sentinel_port}",
            redis_password=PASSWORD,
            redis_db=2,
        )
        async with running_app(chosen) as client:
            session = await create_session(client, "u-sentinel", title="via sentinel")
            assert (await client.get("/ready")).status_code == 200
        url = f"redis://127.0.0.1:{master.port}/2"
        async with Redis.from_url(url, password=PASSWORD, decode_responses=True) as raw:
            key = Keys("fms").session("u-sentinel", session["session_id"])
            assert await raw.hget(key, "t") == "via sentinel"
        wrong = settings(
            redis_mode="sentinel",
            redis_sentinel_hosts=f"127.0.0.1:{sentinel_port}",
            redis_password="wrong",
        )
        problem, _ = await unusable_setting(wrong, wrong.redis_connection_url)
        assert problem is not None and problem.startswith("invalid REDIS_PASSWORD")


async def test_cluster_mode_authenticates_to_every_node_with_redis_password(
    tmp_path: Path,
) -> None:
    with protected_cluster(tmp_path) as node:
        chosen = settings(
            redis_mode="cluster",
            redis_host="127.0.0.1",
            redis_port=node.port,
            redis_password=PASSWORD,
        )
        async with running_app(chosen) as client:
            session = await create_session(client, "u-cluster", title="via cluster")
            listed = await client.get("/api/v1/sessions", headers={"X-User-ID": "u-cluster"})
        assert [s["title"] for s in listed.json()["sessions"]] == ["via cluster"]
        async with Redis(port=node.port, password=PASSWORD, decode_responses=True) as raw:
            key = Keys("fms").session("u-cluster", session["session_id"])
            assert await raw.hget(key, "t") == "via cluster"
        seeds = settings(
            redis_mode="cluster",
            redis_cluster_nodes=f"127.0.0.1:{node.port}",
            redis_password="wrong",
        )
        problem, _ = await unusable_setting(seeds, seeds.redis_connection_url)
        assert problem is not None and problem.startswith("invalid REDIS_PASSWORD")
