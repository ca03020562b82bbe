"""Side by side in one run: the ASGI server (uvicorn vs granian) and the Redis client
(redis-py + hiredis vs coredis). Runs only where the alternatives are installed
(`.venv/bin/pip install granian coredis`); the service keeps what is faster and
supports every Redis mode, see bench/README.md.
"""

from __future__ import annotations

import importlib.util

from bench.context import SESSIONS, Ctx
from bench.harness import HOST
from bench.loadgen import Result, http_request, run_load
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, seed_sessions


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _vs(r: Result, base: Result | None) -> str:
    """Throughput and server CPU per request, relative to the uvicorn + redis-py row."""
    if base is None or not base.rps:
        return ""
    cpu = f", cpu {r.server_us / base.server_us:.2f} x" if r.server_us and base.server_us else ""
    return f"{r.rps / base.rps:.2f} x the uvicorn/redis-py req/s{cpu}"


@scenario("servers", order=140)
async def servers(ctx: Ctx) -> list[Row]:
    bench = ctx.bench
    rows: list[Row] = []
    missing = [name for name in ("granian", "coredis") if not _installed(name)]
    if missing:
        return [Row("servers: comparison skipped", check=f"not installed: {', '.join(missing)}")]

    def ceiling(i: int) -> bytes:
        return http_request("GET", "/", "u")

    base_b = None
    for label, app, server in (
        ("(b) uvicorn + redis-py", "bench.ceilings:redis_app", "uvicorn"),
        ("(b) granian + redis-py", "bench.ceilings:redis_app", "granian"),
        ("(b) uvicorn + coredis", "bench.ceilings:coredis_app", "uvicorn"),
    ):
        async with bench.serve(app, server) as port:
            r = await bench.with_cpu(run_load(
                f"servers: {label}", HOST, port, ceiling,
                connections=bench.connections, duration=bench.duration,
            ))  # fmt: skip
        base_b = base_b or r
        rows.append(ctx.row(r, _vs(r, base_b)))
    pool = ctx.pool
    hot = await seed_sessions(ctx.store, "bench-srv", 4)
    body = {"role": "user", "content": CONTENT_256}

    def get(i: int) -> bytes:
        return http_request("GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g")

    def append(i: int) -> bytes:
        return http_request("POST", f"{SESSIONS}/{hot[i % 4]}/messages", "bench-srv", body)

    async with bench.serve("service", "granian") as port:
        for key, factory, connections in (("get", get, bench.connections), ("append", append, 64)):
            r = await bench.with_cpu(run_load(
                f"servers: {key} under granian", HOST, port, factory,
                connections=connections, duration=bench.duration,
            ))  # fmt: skip
            rows.append(ctx.row(r, _vs(r, ctx.results.get(key))))
    return rows
