"""One round: clients and faults for a seeded plan, then the final state and the checker.

`run_round` is what the pytest entry points (`test_model.py`, `soak.py`,
`defects_demo.py`) call; it prints one line per round and, on a violation, the shrunk
sub-history of each distinct violation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.conftest import make_settings, running_app
from tests.model import defects
from tests.model.checker import Violation, check
from tests.model.final import FinalState, read_final, wait_out_short_sessions
from tests.model.history import Op
from tests.model.shrink import report
from tests.model.workload import Instance, Plan, World, run_clients
from tests.proxy import FAULTS, FaultProxy

#: Test-only knobs ("buggify"): small slices, so a handful of sessions and messages
#: take the multi-step paths (staged rewinds, sliced copies, sliced delete-all and
#: erase) that production reaches only at thousands. Module globals read at call time;
#: a knob a refactor removed is reported and skipped.
KNOBS: dict[str, dict[str, int]] = {
    "session_service.store.branches": {"INLINE_MAX": 3, "SLICE_FIRST": 2, "SLICE_MAX": 4},
    "session_service.store.account": {"DELETE_SLICE": 2},
    "session_service.store.erasure": {"ERASE_SLICE": 2, "STRAY_BATCH": 3},
}
#: Violation kinds left out (MODEL_IGNORE=kind,kind): to look past a known defect
#: while its fix is not merged yet. Printed by every run that sets it.
IGNORED = frozenset(k for k in os.environ.get("MODEL_IGNORE", "").split(",") if k)
#: A short-lived session lives this long after its last activity.
SHORT_TTL_SECONDS = 2


@dataclass
class Topo:
    """Where a round runs: settings for the apps, and the primaries to walk and flush."""

    mode: str
    settings: dict[str, Any]
    primaries: Callable[[], list[str]]
    redis_port: int | None = None  # standalone: the proxies' upstream
    failover: Callable[[], None] | None = None  # sentinel/cluster: a (blocking) failover


@dataclass
class Faults:
    proxy: bool = True
    client_kill: bool = True
    restart: bool = True
    failover: bool = False
    log: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Round:
    seed: int
    history: list[Op]
    final: FinalState
    violations: list[Violation]
    seconds: float
    faults: list[tuple[float, str]]
    origin: float

    def summary(self) -> str:
        ignored = f" ignoring {','.join(sorted(IGNORED))}" if IGNORED else ""
        outcomes = Counter(op.outcome for op in self.history)
        kinds = Counter(f for _, f in self.faults)
        return (
            f"seed={self.seed} ops={len(self.history)} ok={outcomes['ok']} "
            f"fail={outcomes['fail']} info={outcomes['info']} faults={dict(kinds)} "
            f"seconds={self.seconds:.1f} violations={len(self.violations)}"
            + (f" {dict(Counter(v.kind for v in self.violations))}" if self.violations else "")
            + ignored
        )

    def explain(self, limit: int = 3) -> str:
        distinct: dict[str, Violation] = {}
        for v in self.violations:
            distinct.setdefault(v.kind, v)
        parts = [f"seed {self.seed}: {len(self.violations)} violations, kinds "
                 f"{sorted(Counter(v.kind for v in self.violations).items())}"]  # fmt: skip
        for v in list(distinct.values())[:limit]:
            parts.append(report(self.history, self.final, v, self.origin))
        faults = ", ".join(f"{t - self.origin:.3f}s {f}" for t, f in self.faults)
        parts.append(f"faults: {faults or 'none'}")
        parts.append(f"whole history: {self.dump()}")
        return "\n\n".join(parts)

    def dump(self) -> Path:
        """The whole history, one JSON object per operation, for a closer look."""
        path = Path(tempfile.gettempdir()) / f"model-history-seed{self.seed}-{os.getpid()}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for op in self.history:
                record = {**dataclasses.asdict(op), "start": op.start - self.origin,
                          "end": op.end - self.origin, "outcome": op.outcome}  # fmt: skip
                out.write(json.dumps(record, default=str) + "\n")
        return path


#: Where `say` writes: pytest's terminal (set by tests/model/conftest.py), else stderr.
REPORTER: Callable[[str], None] | None = None


def say(line: str) -> None:
    """Printed even when pytest captures output: the budget and seeds must be seen."""
    if REPORTER is not None:
        REPORTER(line)
    else:
        print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def knobs() -> Iterator[list[str]]:
    import importlib

    saved: list[tuple[Any, str, Any]] = []
    applied: list[str] = []
    try:
        for module_name, values in KNOBS.items():
            module = importlib.import_module(module_name)
            for name, value in values.items():
                if hasattr(module, name):
                    saved.append((module, name, getattr(module, name)))
                    setattr(module, name, value)
                    applied.append(f"{module_name.rsplit('.', 1)[1]}.{name}={value}")
                else:
                    say(f"model: knob {module_name}.{name} no longer exists; skipped")
        yield applied
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


async def _flush(primaries: list[str]) -> None:
    for url in primaries:
        async with Redis.from_url(url) as redis:
            await redis.flushall()


@contextlib.asynccontextmanager
async def _proxies(topo: Topo, count: int) -> AsyncIterator[list[FaultProxy]]:
    proxies: list[FaultProxy] = []
    try:
        if topo.redis_port is not None:
            for _ in range(count):
                proxies.append(await FaultProxy(topo.redis_port).start())
        yield proxies
    finally:
        for proxy in proxies:
            # Closing the clients' side first lets each relay end by itself; a relay
            # cancelled mid-read makes asyncio log a spurious error.
            proxy.choose = lambda chunk: None
            await proxy.sever_all()
            if proxy._tasks:
                await asyncio.wait(set(proxy._tasks), timeout=5)
            await proxy.stop()


async def _fault_loop(
    seed: int, topo: Topo, faults: Faults, proxies: list[FaultProxy],
    instances: list[Instance], done: asyncio.Event,
) -> None:  # fmt: skip
    """Seeded faults at seeded pauses until the clients are done."""
    rng = random.Random(f"{seed}:faults")
    actions = []
    if faults.proxy and proxies:
        actions += ["proxy"] * 4
    if faults.client_kill:
        actions += ["client_kill"] * 2
    if faults.restart:
        actions += ["restart"]
    failovers = 1 if faults.failover and topo.failover else 0
    while (actions or failovers) and not done.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), rng.uniform(0.1, 0.5))
            return
        if failovers and rng.random() < 0.1:
            failovers -= 1
            await _failover(topo, faults)
        elif actions:
            action = rng.choice(actions)
            faults.log.append((time.monotonic(), action))
            await _inject(action, rng, topo, proxies, instances, done)


async def _failover(topo: Topo, faults: Faults) -> None:
    faults.log.append((time.monotonic(), "failover"))
    assert topo.failover is not None
    try:
        await asyncio.to_thread(topo.failover)
    except Exception as error:  # the round goes on; the log says it failed
        faults.log.append((time.monotonic(), f"failover failed: {error}"))


async def _inject(
    action: str, rng: random.Random, topo: Topo, proxies: list[FaultProxy],
    instances: list[Instance], done: asyncio.Event,
) -> None:  # fmt: skip
    if action == "proxy":
        # A burst of dropped, reset and stalled replies on one instance's connections.
        proxy = rng.choice(proxies)
        chooser = random.Random(rng.random())
        proxy.choose = lambda chunk: chooser.choice(FAULTS) if chooser.random() < 0.2 else None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), rng.uniform(0.02, 0.1))
        proxy.choose = lambda chunk: None
    elif action == "client_kill":
        for url in topo.primaries():
            with contextlib.suppress(Exception):
                async with Redis.from_url(url) as redis:
                    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    elif action == "restart":
        await rng.choice(instances).kill()


async def run_round(
    seed: int,
    topo: Topo,
    plan: Plan,
    faults: Faults,
    defect: str | None = None,
    instances_count: int = 2,
) -> Round:
    started = time.monotonic()
    await _flush(topo.primaries())
    overrides = {
        **topo.settings,
        "default_session_ttl": SHORT_TTL_SECONDS,
        "access_log": False,
        "redis_timeout_seconds": 3.0,
        "max_sessions_per_user": 10_000,
    }
    async with _proxies(topo, instances_count) as proxies:
        instances: list[Instance] = []
        for index in range(instances_count):
            values = dict(overrides)
            url = proxies[index].url if proxies else values.pop("redis_url", None)
            values.pop("redis_url", None)
            instance = Instance(index, make_settings(url, **values))
            instance.on_start = defects.injector(defect)
            await instance.start()
            instances.append(instance)
        world = World(seed, plan, instances)
        done = asyncio.Event()
        fault_task = asyncio.create_task(_fault_loop(seed, topo, faults, proxies, instances, done))
        try:
            await run_clients(world, plan.ops_per_client)
        finally:
            done.set()
            await fault_task
            for proxy in proxies:
                proxy.choose = lambda chunk: None
            for instance in instances:
                await instance.stop()
        users = {u: {k.sid for k in world.known[u]} for u in plan.users}
        for op in world.history:
            if op.ok and isinstance(op.body, dict) and "session_id" in op.body:
                users.setdefault(op.user, set()).add(op.body["session_id"])
    values = dict(overrides)
    url = values.pop("redis_url", None)
    async with running_app(make_settings(url, **values)) as reader:
        await wait_out_short_sessions(reader, users)
        final = await read_final(reader, users, topo.primaries())
    final.short_ttl_seconds = SHORT_TTL_SECONDS
    # Sockets of killed instances' cancelled commands are collected now, inside the test
    # that made them (and its warning filter), not in whichever test runs next.
    gc.collect()
    violations = [v for v in check(world.history, final) if v.kind not in IGNORED]
    return Round(seed, world.history, final, violations, time.monotonic() - started,
                 faults.log, world.origin)  # fmt: skip


#: The model runs' size, shared by `test_model.py` and `defects_demo.py` (MODEL_SEEDS, MODEL_OPS).
SEEDS = [int(s) for s in os.environ.get("MODEL_SEEDS", "1,2,3").split(",")]
OPS = int(os.environ.get("MODEL_OPS", "50"))
CLIENTS = 6
