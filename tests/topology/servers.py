"""Real Sentinel and Cluster topologies, started from the embedded default's binary.

Every process listens on a free loopback port with its own directory; the
`with` blocks stop every process they started, also when a test fails.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from session_service.store.embedded import find_server_binary
from tests.servers import RedisProcess, free_port, wait_for_port

MASTER_SET = "mymaster"
#: Replicas sync at once instead of after the default 5 s diskless-sync delay.
FAST_SYNC = ("--repl-diskless-sync-delay", "0")
#: Short enough for a failover within a couple of seconds, long enough not to
#: flap on a loaded 2-core CI box.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def cli_binary() -> str:
    return str(Path(find_server_binary()).with_name("valkey-cli"))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def sync_client(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=2)


class SentinelProcess:
    """A sentinel watching one master set, with a fresh config file per start."""

    def __init__(self, workdir: Path, master_port: int) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.master_port = master_port
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def config(self) -> str:
        """What this sentinel monitors and how (quorum 2 of the topology's three)."""
        return (
            f"sentinel monitor {MASTER_SET} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_SET} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_SET} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_SET} 1\n"
        )

    def start(self) -> SentinelProcess:
        config = self.workdir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.workdir}\n"
            f"logfile {self.workdir / 'sentinel.log'}\n" + self.config()
        )
        self.process = subprocess.Popen(
            [find_server_binary(), str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()


@dataclass
class SentinelTopology:
    master: RedisProcess
    replicas: list[RedisProcess]
    sentinels: list[SentinelProcess]

    @property
    def hosts(self) -> str:
        """The REDIS_SENTINEL_HOSTS value."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int:
        with sync_client(self.sentinels[0].port) as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_SET)
        return int(port)

    def wait_promoted(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel agrees on a new, healthy master; its port."""

        def promoted() -> bool:
            for sentinel in self.sentinels:
                with sync_client(sentinel.port) as client:
                    info = client.sentinel_master(MASTER_SET)
                    if int(info["port"]) == old_port or info["flags"] != "master":
                        return False
            return True

        wait_until(promoted, "sentinel to promote a replica", timeout)
        return self.master_port()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every sentinel knows the master, its replicas and the other sentinels."""

        def healthy() -> bool:
            for sentinel in self.sentinels:
                with sync_client(sentinel.port) as client:
                    info = client.sentinel_master(MASTER_SET)
                    if int(info["num-slaves"]) < len(self.replicas):
                        return False
                    if int(info["num-other-sentinels"]) < len(self.sentinels) - 1:
                        return False
                    if "s_down" in info["flags"] or "o_down" in info["flags"]:
                        return False
            with sync_client(self.master_port()) as master:
                return len(_online_replicas(master)) >= len(self.replicas)

        wait_until(healthy, "the sentinel topology to be healthy", timeout)

    def stop(self) -> None:
        for process in [*self.sentinels, *self.replicas, self.master]:
            process.stop(hard=True) if isinstance(process, RedisProcess) else process.stop()


@contextlib.contextmanager
def sentinel_topology(workdir: Path, replicas: int = 1) -> Iterator[SentinelTopology]:
    """1 master, `replicas` replicas and 3 sentinels with short failure timeouts."""
    topology = SentinelTopology(RedisProcess(workdir / "master", None, *FAST_SYNC), [], [])
    try:
        topology.master.start()
        for index in range(replicas):
            replica = RedisProcess(
                workdir / f"replica{index}",
                None,
                "--replicaof", "127.0.0.1", str(topology.master.port),
                *FAST_SYNC,
            )  # fmt: skip
            topology.replicas.append(replica.start())
        for index in range(3):
            sentinel = SentinelProcess(workdir / f"sentinel{index}", topology.master.port)
            topology.sentinels.append(sentinel.start())
        topology.wait_healthy()
        yield topology
    finally:
        topology.stop()


@dataclass
class ClusterTopology:
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def seeds(self) -> str:
        """The REDIS_CLUSTER_NODES value."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def primaries(self) -> list[int]:
        with sync_client(self.nodes[0].port) as client:
            shards = client.execute_command("CLUSTER", "SHARDS")
        ports = []
        for shard in shards:
            shard_nodes = _pairs(shard)["nodes"]
            for node in shard_nodes:
                node_info = _pairs(node)
                if node_info["role"] == "master" and node_info["health"] == "online":
                    ports.append(int(node_info["port"]))
        return sorted(ports)

    def wait_healthy(self, masters: int, timeout: float = 30.0) -> None:
        def healthy() -> bool:
            for node in self.nodes:
                with sync_client(node.port) as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    if "cluster_state:ok" not in str(info):
                        return False
                    known = int(_info_field(str(info), "cluster_known_nodes"))
                    if known < len(self.nodes):
                        return False
            for port in self.primaries():
                with sync_client(port) as client:
                    if len(_online_replicas(client)) < len(self.nodes) // masters - 1:
                        return False
            return len(self.primaries()) == masters

        wait_until(healthy, "the cluster to be healthy", timeout)

    def flush(self) -> None:
        for port in self.primaries():
            with sync_client(port) as client:
                client.flushall()

    def shard_of(self, key: str) -> tuple[int, int]:
        """(primary port, replica port) of the shard serving `key`."""
        with sync_client(self.nodes[0].port) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    with sync_client(int(primary[1])) as owner:
                        replica = _online_replicas(owner)[0]
                    return int(primary[1]), int(str(replica["port"]))
        raise LookupError(f"slot {slot} is not served")

    def move_slot_of(self, key: str, target_port: int) -> None:
        """Reshard the slot of `key` to another primary, as `valkey-cli --cluster reshard` does."""
        source_port, _ = self.shard_of(key)
        with sync_client(source_port) as source, sync_client(target_port) as target:
            slot = int(source.execute_command("CLUSTER", "KEYSLOT", key))
            source_id = source.execute_command("CLUSTER", "MYID")
            target_id = target.execute_command("CLUSTER", "MYID")
            target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                source.execute_command(
                    "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys
                )
                time.sleep(0.05)  # let the load hit the half-moved slot
            for node in (target, source):
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def promote(self, replica_port: int) -> None:
        """A manual (graceful) failover: the replica takes over its primary's slots."""
        with sync_client(replica_port) as client:
            client.execute_command("CLUSTER", "FAILOVER")
            wait_until(lambda: client.execute_command("ROLE")[0] == "master", "the promotion")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(hard=True)


def _online_replicas(client: redis.Redis) -> list[dict[str, object]]:
    replication = client.info("replication")
    return [
        value
        for name, value in replication.items()
        if name.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
    ]


def _pairs(flat: list[object] | dict[str, object]) -> dict[str, object]:
    if isinstance(flat, dict):
        return flat
    return {str(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _info_field(info: str, name: str) -> str:
    for line in info.splitlines():
        if line.startswith(name + ":"):
            return line.partition(":")[2].strip()
    raise KeyError(name)


@contextlib.contextmanager
def cluster_topology(
    workdir: Path, masters: int = 3, replicas: int = 1
) -> Iterator[ClusterTopology]:
    """A Cluster of `masters` primaries with `replicas` replicas each, built by valkey-cli."""
    topology = ClusterTopology()
    try:
        for index in range(masters * (1 + replicas)):
            node = RedisProcess(
                workdir / f"node{index}",
                None,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                # The default bus port (port + 10000) may not exist for a high free port.
                "--cluster-port", str(free_port()),
                *FAST_SYNC,
            )  # fmt: skip
            topology.nodes.append(node.start())
        create = [
            cli_binary(),
            "--cluster", "create",
            *(f"127.0.0.1:{n.port}" for n in topology.nodes),
            "--cluster-replicas", str(replicas),
            "--cluster-yes",
        ]  # fmt: skip
        subprocess.run(
            create,
            check=True,
            capture_output=True,
            timeout=60,
        )
        topology.wait_healthy(masters)
        yield topology
    finally:
        topology.stop()
