"""`python -m bench`: start the service, run every scenario, print one table.

Layout on this 2-core machine: the server under test (service or ceiling app)
is pinned to core 0; Redis and this load generator share core 1. Production
defaults stay on (JSON access log, metrics, request ids).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvloop

from bench.harness import Bench, pin
from bench.report import print_table, save_json
from bench.scenarios import ceilings, memory, service_scenarios


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--redis-url", help="use this Redis instead of starting one (redis://host:port)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per scenario (default 5)")
    p.add_argument(
        "--connections", type=int, default=32, help="concurrent connections (default 32)"
    )
    p.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: tiny sizes and durations (CI uses it)"
    )
    p.add_argument("--only", nargs="*", help="run only scenarios whose name contains one of these")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    bench = Bench(
        redis_url=args.redis_url,
        duration=0.6 if args.quick else args.duration,
        connections=args.connections,
        workers=args.workers,
        quick=args.quick,
        only=args.only,
    )
    async with bench:
        rows = []
        rows += await ceilings(bench)
        rows += await service_scenarios(bench)
        rows += await memory(bench)
    print_table(rows, bench)
    if args.json:
        save_json(rows, args.json)
    failed = [r for r in rows if r.check_failed]
    if failed:
        print(f"correctness check failed in: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if (os.cpu_count() or 1) >= 2:
        pin({1})  # the load generator shares core 1 with Redis
    return uvloop.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
