"""The results table."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.harness import Bench
    from bench.loadgen import Result


@dataclass
class Row:
    name: str
    rps: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    errors: int | None = None
    server_us: float | None = None
    of_b: float | None = None
    check: str = ""
    check_failed: bool = False

    @classmethod
    def from_result(
        cls, result: Result, ceiling_b: float, check: str = "", failed: bool = False
    ) -> Row:
        return cls(
            name=result.name,
            rps=result.rps,
            p50=result.percentile(50),
            p95=result.percentile(95),
            p99=result.percentile(99),
            p999=result.percentile(99.9),
            errors=result.errors,
            server_us=result.server_us,
            of_b=(result.rps / ceiling_b) if ceiling_b else None,
            check=check,
            check_failed=failed,
        )


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def print_table(rows: list[Row], bench: Bench) -> None:
    header = (
        f"{'scenario':<48} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'errors':>6} {'of (b)':>6} {'cpu us':>6}  check"
    )
    print()
    print(
        f"fm-session-service benchmark: {bench.connections} connections, {bench.duration:g}s per "
        f"scenario, {bench.workers} worker(s), {bench.layout}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        share = "" if r.of_b is None else f"{r.of_b * 100:.0f}%"
        errors = "" if r.errors is None else str(r.errors)
        print(
            f"{r.name:<48} {_fmt(r.rps, '8.0f'):>8} {_fmt(r.p50, '7.2f'):>7} "
            f"{_fmt(r.p95, '7.2f'):>7} {_fmt(r.p99, '7.2f'):>7} {_fmt(r.p999, '8.2f'):>8} "
            f"{errors:>6} {share:>6} {_fmt(r.server_us, '6.0f'):>6}  "
            f"{'FAIL ' if r.check_failed else ''}{r.check}"
        )
    print(
        "cpu us: CPU time of the server under test (process tree) per request, warm-up "
        "included; it moves far less than req/s when other work shares the machine."
    )
    print()


def save_json(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=2))
