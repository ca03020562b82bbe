"""`make soak`: the model checker for longer, on every topology, with a seed option.

Not collected by `make test` (the file name does not start with `test_`); run through
`make soak`, which passes:

- SEED: the first round's seed (default: one drawn from the clock, printed); round n
  uses SEED + n, so a failing round's seed is printed and replays alone;
- DURATION: seconds of rounds per topology (0: exactly one round);
- TOPOLOGY: standalone, sentinel, cluster or all (default);
- DEFECT: run with a re-introduced defect (see tests/model/defects.py);
- OPS, CLIENTS: operations per client and clients per round.

On Sentinel a round also fails the master over (SENTINEL FAILOVER) while the clients
run, with REDIS_MIN_REPLICAS_ACK=1 and REDIS_CONFIRMED_READS (without it a read may
show a write the failover loses: the documented `id-reused` trade-off); on Cluster a
replica takes over its primary's slots (CLUSTER FAILOVER). The fault proxy sits only
in front of a standalone server (Sentinel and Cluster hand out the nodes' own
addresses); CLIENT KILL and instance restarts run everywhere.
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import pytest
import redis

from tests.model.harness import Faults, Topo, knobs, run_round, say
from tests.model.workload import Plan
from tests.topology.conftest import REPLICA_ACK_TIMEOUT_MS, cluster, sentinel  # noqa: F401
from tests.topology.servers import (
    MASTER_SET,
    ClusterTopology,
    SentinelTopology,
    _online_replicas,
    sync_client,
)

pytestmark = [
    pytest.mark.slow,
    # See test_model.py: a killed instance's cancelled connections are left to the GC.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MODES = ("standalone", "sentinel", "cluster")
CHOSEN = os.environ.get("MODEL_TOPOLOGY", "all")
SEED = int(os.environ.get("MODEL_SEED") or random.SystemRandom().randrange(1, 10**6))
DURATION = float(os.environ.get("MODEL_DURATION", "60"))
DEFECT = os.environ.get("MODEL_DEFECT") or None
OPS = int(os.environ.get("MODEL_OPS", "80"))
CLIENTS = int(os.environ.get("MODEL_CLIENTS", "8"))


def _sentinel_failover(topology: SentinelTopology) -> None:
    """Fail the master over; a sentinel may refuse while the last failover settles
    (NOGOODSLAVE, INPROG), so it is asked again, for up to a minute."""
    old = topology.master_port()
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(redis.RedisError), sync_client(topology.sentinels[0].port) as c:
            c.execute_command("SENTINEL", "FAILOVER", MASTER_SET)
        try:
            topology.wait_promoted(old, timeout=10)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
    topology.wait_healthy(timeout=90)


def _cluster_failover(topology: ClusterTopology, rng: random.Random) -> None:
    primary = rng.choice(topology.primaries())
    with sync_client(primary) as client:
        replica = int(str(_online_replicas(client)[0]["port"]))
    topology.promote(replica)
    topology.wait_healthy(len(topology.primaries()), timeout=90)


def _topo(mode: str, request: pytest.FixtureRequest, seed: int) -> Topo:
    if mode == "sentinel":
        s: SentinelTopology = request.getfixturevalue("sentinel")
        settings = {
            "redis_mode": "sentinel", "redis_sentinel_hosts": s.hosts, "redis_url": None,
            "redis_min_replicas_ack": 1, "redis_replica_ack_timeout_ms": REPLICA_ACK_TIMEOUT_MS,
            "redis_confirmed_reads": True,
        }  # fmt: skip
        return Topo(mode, settings, lambda: [f"redis://127.0.0.1:{s.master_port()}/0"],
                    failover=lambda: _sentinel_failover(s))  # fmt: skip
    if mode == "cluster":
        c: ClusterTopology = request.getfixturevalue("cluster")
        rng = random.Random(f"{seed}:cluster")
        settings = {
            "redis_mode": "cluster", "redis_cluster_nodes": c.seeds, "redis_url": None,
            "redis_min_replicas_ack": 1, "redis_replica_ack_timeout_ms": REPLICA_ACK_TIMEOUT_MS,
            "redis_confirmed_reads": True,
        }  # fmt: skip
        return Topo(mode, settings, lambda: [f"redis://127.0.0.1:{p}/0" for p in c.primaries()],
                    failover=lambda: _cluster_failover(c, rng))  # fmt: skip
    url: str = request.getfixturevalue("redis_url")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return Topo(mode, {"redis_url": url}, lambda: [url], redis_port=port)


@pytest.mark.timeout(0)
@pytest.mark.parametrize("mode", [m for m in MODES if CHOSEN in ("all", m)])
async def test_soak(mode: str, request: pytest.FixtureRequest) -> None:
    topo = _topo(mode, request, SEED)
    plan = Plan(clients=CLIENTS, ops_per_client=OPS)
    faults = Faults(failover=mode != "standalone")
    deadline = time.monotonic() + DURATION
    seed, rounds, ops = SEED, 0, 0
    with knobs() as applied:
        say(
            f"\nsoak[{mode}]: first seed {SEED}, {DURATION:.0f} s, {CLIENTS} clients x {OPS} "
            f"operations per round, defect {DEFECT or 'none'}; knobs {', '.join(applied)}"
        )
        while True:
            faults.log.clear()
            result = await run_round(seed, topo, plan, faults, defect=DEFECT)
            rounds, ops = rounds + 1, ops + len(result.history)
            say(f"soak[{mode}]: {result.summary()}")
            if result.violations:
                pytest.fail(
                    f"{result.explain()}\n\nreplay: make soak TOPOLOGY={mode} SEED={seed} "
                    f"DURATION=0 OPS={OPS} CLIENTS={CLIENTS}"
                    + (f" DEFECT={DEFECT}" if DEFECT else ""),
                    pytrace=False,
                )
            if time.monotonic() >= deadline:
                break
            seed += 1
    say(f"soak[{mode}]: {rounds} rounds, {ops} operations, seeds {SEED}..{seed}: no violation")
