"""`python -m bench`: start the service, run every scenario, print one table.

Default layout on this 2-core machine: the server under test (service or
ceiling app) is pinned to core 0; Redis and this load generator share core 1
(--server-cores, --redis-cores, --client-cores change it, in taskset's list
syntax). Production defaults stay on (JSON access log, metrics, request ids).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import uvloop

from bench.baseline import ceilings, memory
from bench.context import Ctx
from bench.harness import CLIENT_CORES, REDIS_CORES, SERVER_CORES, Bench, parse_cores, pin
from bench.registry import discover
from bench.report import Row, print_table, save_json
from bench.seed import seed_sessions


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--redis-url", help="use this Redis instead of starting one (redis://host:port)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per scenario (default 5)")
    p.add_argument(
        "--connections", type=int, default=32, help="concurrent connections (default 32)"
    )
    p.add_argument("--workers", type=int, default=1, help="service worker processes (default 1)")
    p.add_argument("--server-cores", default=SERVER_CORES, help="cores of the server under test")
    p.add_argument("--client-cores", default=CLIENT_CORES, help="cores of this load generator")
    p.add_argument("--redis-cores", default=REDIS_CORES, help="cores of the Redis it starts")
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: tiny sizes and durations (CI uses it)"
    )
    p.add_argument(
        "--only", nargs="*", help="run only the scenarios whose name contains one of these"
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    return p.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    bench = Bench(
        redis_url=args.redis_url,
        duration=0.6 if args.quick else args.duration,
        connections=args.connections,
        workers=args.workers,
        quick=args.quick,
        only=args.only,
        server_cores=args.server_cores,
        client_cores=args.client_cores,
        redis_cores=args.redis_cores,
    )
    scenarios = discover()
    rows: list[Row] = []
    async with bench:
        ctx = Ctx(bench)
        rows += await ceilings(ctx)
        async with bench.serve("service") as port:
            ctx.port = port
            ctx.pool = await seed_sessions(ctx.store, "bench-g", 200 if bench.quick else 1000)
            for s in scenarios:
                if s.always or bench.wants(s.name):
                    rows += await s.fn(ctx)
        rows += await memory(ctx)
    print_table(rows, bench)
    print(f"run time {time.monotonic() - started:.0f} s")
    if args.json:
        save_json(rows, args.json)
    failed = [r for r in rows if r.check_failed]
    if failed:
        print(f"correctness check failed in: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.list:
        for s in discover():
            print(f"{s.order:4d}  {s.name}{'  (always)' if s.always else ''}")
        return 0
    if (os.cpu_count() or 1) >= 2:
        pin(parse_cores(args.client_cores))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
