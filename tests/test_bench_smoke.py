"""The benchmark command works end to end (a very short run; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_prints_the_table_and_finds_no_lost_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "get", "append"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for row in (
        "(a) ceiling: bare ASGI JSON",
        "(b) ceiling: bare ASGI + one redis-py GET",
        "(c) raw Redis: EVALSHA append",
        "get session",
        "append message (64 writers, 4 hot sessions)",
        "memory: bytes per empty session",
        "memory: bytes per 256 B message",
        "redis cost: append",
        "redis cost: raw append",
        "bar: get >= 0.65 x (b)",
    ):
        assert row in out
    append_line = next(line for line in out.splitlines() if line.startswith("append message"))
    assert "lost 0, duplicated 0, extra 0" in append_line
    # The append runs a script: Redis counted its commands inside it.
    cost_line = next(line for line in out.splitlines() if line.startswith("redis cost: append"))
    assert " cmds/req + " in cost_line
    assert "FAIL" not in out


def test_bench_lists_every_registered_scenario() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [line.split()[1] for line in proc.stdout.splitlines()]
    for name in ("create", "get", "append", "conn-per-request", "open-loop", "largest"):
        assert name in names
