"""The checker can fail: each re-introduced defect is found within the `make test` budget.

Run with `make model-defects` (or `pytest tests/model/defects_demo.py`); not part of
`make test`. For each defect the rounds of the `make test` budget run in order (same
seeds, plan and faults) with the defect switched on, until a round's checker reports
the violation the defect causes; the time taken and the shrunk sub-history are printed.
"""

from __future__ import annotations

import time

import pytest

from tests.model.defects import DEFECTS
from tests.model.harness import CLIENTS, OPS, SEEDS, Faults, Topo, knobs, run_round, say
from tests.model.workload import Plan

pytestmark = [
    pytest.mark.slow,
    # A killed instance's requests are cancelled mid-command, and redis-py leaves such a
    # connection's socket to the garbage collector: a warning about the simulated crash,
    # not about the contract this test checks.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

#: The violations each defect shows as (any one of them).
EXPECTED = {
    "rewind-drops-summaries": {"summary-lost", "summary-not-read"},
    "delete-all-stops-after-count": {"delete_all-left-session"},
    "erase-interrupted-hides-sessions": {
        "delete_all-left-session", "erase-left-session", "erase-left-message",
        "index-misses-live", "orphan-key",
    },
}  # fmt: skip


@pytest.mark.parametrize("defect", DEFECTS)
async def test_the_checker_finds_a_reintroduced_defect(
    defect: str, redis_url: str, redis_process: object
) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    topo = Topo("standalone", {"redis_url": redis_url}, lambda: [redis_url], redis_port=port)
    plan = Plan(clients=CLIENTS, ops_per_client=OPS)
    started = time.monotonic()
    with knobs():
        for seed in SEEDS:
            result = await run_round(seed, topo, plan, Faults(), defect=defect)
            say(f"model[{defect}]: {result.summary()}")
            found = [v for v in result.violations if v.kind in EXPECTED[defect]]
            if found:
                say(
                    f"model[{defect}]: found in {time.monotonic() - started:.1f} s "
                    f"(seed {seed}); {found[0].kind}"
                )
                say(result.explain(limit=1))
                return
    pytest.fail(f"{defect}: not found with seeds {SEEDS} x {OPS} operations per client")


async def test_a_correct_delete_all_shows_no_such_violation(
    redis_url: str, redis_process: object
) -> None:
    """The control for `delete-all-stops-after-count`: the same budget with a correct
    delete-all written the same way (defects.CONTROLS) shows no delete-all violation,
    so the one found with the defect comes from the defect."""
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    topo = Topo("standalone", {"redis_url": redis_url}, lambda: [redis_url], redis_port=port)
    plan = Plan(clients=CLIENTS, ops_per_client=OPS)
    with knobs():
        for seed in SEEDS:
            result = await run_round(seed, topo, plan, Faults(), defect="delete-all-reference")
            say(f"model[delete-all-reference]: {result.summary()}")
            wrong = [v for v in result.violations if v.kind == "delete_all-left-session"]
            assert not wrong, result.explain(limit=1)
