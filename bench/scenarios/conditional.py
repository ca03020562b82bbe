"""Reads that answer without a body: HEAD a session (and, with ETags, a 304)."""

from __future__ import annotations

from bench.context import SESSIONS, Ctx
from bench.loadgen import http_request
from bench.registry import scenario
from bench.report import Row


@scenario("head", order=22)
async def head(ctx: Ctx) -> list[Row]:
    pool = ctx.pool
    r = await ctx.load(
        "HEAD session",
        lambda i: http_request("HEAD", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g"),
        cost="head",
    )
    ctx.results["head"] = r
    get = ctx.results.get("get")
    return [ctx.row(r, f"{r.rps / get.rps:.2f} x get" if get and get.rps else "")]
