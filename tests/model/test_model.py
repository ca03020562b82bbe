"""The model checker in `make test`: a fixed, seeded budget on standalone, with faults.

Seeds and budget come from MODEL_SEEDS (comma-separated) and MODEL_OPS (operations per
client); both are printed. A failure prints each violation's minimal sub-history and
the command that replays its round alone (`make soak ... DURATION=0`).
"""

from __future__ import annotations

import pytest

from tests.model.harness import CLIENTS, OPS, SEEDS, Faults, Topo, knobs, run_round, say
from tests.model.workload import Plan

pytestmark = [
    pytest.mark.slow,
    # A killed instance's requests are cancelled mid-command, and redis-py leaves such a
    # connection's socket to the garbage collector: a warning about the simulated crash,
    # not about the contract this test checks.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


# A budget of operations, not of time: on a loaded machine it takes longer, never less.
@pytest.mark.timeout(600)
async def test_random_histories_keep_the_contract(redis_url: str, redis_process: object) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    topo = Topo("standalone", {"redis_url": redis_url}, lambda: [redis_url], redis_port=port)
    plan = Plan(clients=CLIENTS, ops_per_client=OPS)
    failures = []
    with knobs() as applied:
        say(
            f"\nmodel: standalone, seeds {SEEDS}, {CLIENTS} clients x {OPS} operations over "
            f"2 instances, faults proxy/client-kill/restart; knobs {', '.join(applied)}"
        )
        for seed in SEEDS:
            result = await run_round(seed, topo, plan, Faults())
            say(f"model: {result.summary()}")
            if result.violations:
                failures.append(
                    f"{result.explain()}\n\nreplay: make soak TOPOLOGY=standalone SEED={seed} "
                    f"DURATION=0 OPS={OPS} CLIENTS={CLIENTS}"
                )
    assert not failures, "\n\n".join(failures)
