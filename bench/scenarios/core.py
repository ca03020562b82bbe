"""The hot operations, closed loop at keep-alive, and the gateway's connection per request."""

from __future__ import annotations

from bench.context import SESSIONS, Ctx
from bench.loadgen import http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, append_check, seed_sessions

CREATE_BODY = {"title": "Disk pressure on node-7"}


def _create(i: int) -> bytes:
    # Users rotate so that none reaches its session limit.
    return http_request("POST", SESSIONS, f"bench-c{i // 2000}", CREATE_BODY)


@scenario("create", order=10)
async def create(ctx: Ctx) -> list[Row]:
    r = await ctx.load("create session", _create, cost="create")
    ctx.results["create"] = r
    return [ctx.row(r, f"201s {r.statuses.get(201, 0)}")]


@scenario("get", order=20)
async def get(ctx: Ctx) -> list[Row]:
    pool = ctx.pool
    r = await ctx.load(
        "get session",
        lambda i: http_request("GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g"),
        cost="get",
    )
    ctx.results["get"] = r
    return [ctx.row(r)]


@scenario("append", order=30)
async def append(ctx: Ctx) -> list[Row]:
    hot = await seed_sessions(ctx.store, "bench-a", 4)
    body = {"role": "user", "content": CONTENT_256}
    r = await ctx.load(
        "append message (64 writers, 4 hot sessions)",
        lambda i: http_request("POST", f"{SESSIONS}/{hot[i % 4]}/messages", "bench-a", body),
        connections=64, keep_bodies=True, warmup=0, cost="append",
    )  # fmt: skip
    ctx.results["append"] = r
    check, failed = await append_check(ctx.store, r.bodies, hot, "bench-a")
    return [ctx.row(r, check, failed)]


@scenario("heartbeat", order=35)
async def heartbeat(ctx: Ctx) -> list[Row]:
    pool = ctx.pool
    r = await ctx.load(
        "heartbeat",
        lambda i: http_request("POST", f"{SESSIONS}/{pool[i % len(pool)]}/heartbeat", "bench-g"),
        duration=min(ctx.bench.duration, 2), cost="heartbeat",
    )  # fmt: skip
    ctx.results["heartbeat"] = r
    return [ctx.row(r)]


@scenario("conn-per-request", order=90)
async def connection_per_request(ctx: Ctx) -> list[Row]:
    """A fresh TCP connection for every request, as the gateway's httpx.AsyncClient does."""
    pool = ctx.pool
    rows = []
    for name, factory in (
        ("create session, connection per request", _create),
        (
            "get session, connection per request",
            lambda i: http_request("GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g"),
        ),
    ):
        r = await ctx.load(name, factory, fresh=True)
        keep_alive = ctx.results.get(name.split(",")[0].split()[0])
        check = f"{r.rps / keep_alive.rps:.0%} of keep-alive" if keep_alive else ""
        rows.append(ctx.row(r, check))
    return rows
