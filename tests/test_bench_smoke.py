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
    ):
        assert row in out
    append_line = next(line for line in out.splitlines() if line.startswith("append message"))
    assert "lost 0, duplicated 0, extra 0" in append_line
    assert "FAIL" not in out
