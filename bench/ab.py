"""A/B: server CPU per request of two builds of the service, measured in the same minutes.

    .venv/bin/python -m bench.ab /path/to/base/checkout /path/to/new/checkout --op get,append

Each side is a checkout (its `src/` goes first on PYTHONPATH); `PATH:VAR=value,...`
sets environment variables for that side only (e.g. `.:ACCESS_LOG=false`). Both
services run at once on the server cores, against one Redis; the load alternates
between them in short slices (A B, B A, ...), so a slowdown of the machine hits
both alike. It prints the medians of server CPU per request and of req/s, and B/A.
On a busy machine req/s moves by tens of percent between runs; this ratio does not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from collections.abc import Callable

from bench.harness import HOST, Bench, _free_port, _pinned, _stop, _wait_port, pin, process_tree_cpu
from bench.loadgen import http_request, run_load
from bench.seed import CONTENT_256, seed_sessions

USER = "bench-ab"
SESSIONS = "/api/v1/sessions"


def _factories(sids: list[str]) -> dict[str, Callable[[int], bytes]]:
    body = {"role": "user", "content": CONTENT_256}
    return {
        "get": lambda i: http_request("GET", f"{SESSIONS}/{sids[i % len(sids)]}", USER),
        "head": lambda i: http_request("HEAD", f"{SESSIONS}/{sids[i % len(sids)]}", USER),
        # As the bench's append row: many writers on 4 hot sessions.
        "append": lambda i: http_request("POST", f"{SESSIONS}/{sids[i % 4]}/messages", USER, body),
        "create": lambda i: http_request("POST", SESSIONS, f"bench-ab-{i % 50}", {"title": "t"}),
        "heartbeat": lambda i: http_request(
            "POST", f"{SESSIONS}/{sids[i % len(sids)]}/heartbeat", USER
        ),
    }


def _start(bench: Bench, side: str) -> tuple[subprocess.Popen[bytes], int]:
    tree, _, extra = side.partition(":")
    port = _free_port()
    env = bench.service_env()
    env["PYTHONPATH"] = f"{tree}/src"
    env.update(dict(pair.split("=", 1) for pair in extra.split(",") if pair))
    cmd = [sys.executable, "-m", "session_service", "serve", "--host", HOST, "--port", str(port)]
    proc = subprocess.Popen(  # type: ignore[call-overload]
        cmd,
        env=env,
        preexec_fn=_pinned(bench.server_cores),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port)
    return proc, port


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("a", help="checkout A (the base), optionally PATH:VAR=value,...")
    parser.add_argument("b", help="checkout B (the change), the same form")
    parser.add_argument("--op", default="get,append,create", help="get,head,append,create,...")
    parser.add_argument("--slices", type=int, default=10, help="slices per side and operation")
    parser.add_argument("--slice-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    async with Bench(
        redis_url=None, duration=args.slice_seconds, connections=32, workers=1,
        quick=False, only=None,
    ) as bench:  # fmt: skip
        pin(bench.client_cores)
        sids = await seed_sessions(bench.store, USER, 1000)  # type: ignore[arg-type]
        factories = _factories(sids)
        sides = {"A": _start(bench, args.a), "B": _start(bench, args.b)}
        failed = False
        try:
            for op in args.op.split(","):
                cpu: dict[str, list[float]] = {"A": [], "B": []}
                rps: dict[str, list[float]] = {"A": [], "B": []}
                for k in range(args.slices):
                    for label in ("A", "B") if k % 2 == 0 else ("B", "A"):
                        proc, port = sides[label]
                        before = process_tree_cpu(proc.pid)
                        r = await run_load(
                            op, HOST, port, factories[op],
                            duration=args.slice_seconds, warmup=0.2,
                        )  # fmt: skip
                        sent = r.requests + r.warm_requests
                        cpu[label].append((process_tree_cpu(proc.pid) - before) * 1e6 / sent)
                        rps[label].append(r.rps)
                        failed |= r.errors > 0
                a, b = statistics.median(cpu["A"]), statistics.median(cpu["B"])
                print(
                    f"{op:10s} A {a:7.1f} us/req {statistics.median(rps['A']):8.0f}/s   "
                    f"B {b:7.1f} us/req {statistics.median(rps['B']):8.0f}/s   B/A {b / a:.3f}",
                    flush=True,
                )
        finally:
            for proc, _ in sides.values():
                _stop(proc)
    if failed:
        print("some requests failed: the slices are not comparable", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
