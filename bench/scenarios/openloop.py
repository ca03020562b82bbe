"""Open-loop latency of get and append at fixed fractions of their measured maximum."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import SESSIONS, Ctx
from bench.loadgen import Result, http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, append_check, seed_sessions

LEVELS = (0.25, 0.50, 0.60, 0.75)  # 60% is the bar's level


async def _maximum(ctx: Ctx, key: str, factory: object, **kw: object) -> float:
    """The closed-loop maximum measured earlier in this run, or a short one now."""
    if key not in ctx.results:
        ctx.results[key] = await ctx.load(f"{key} (max)", factory, **kw)  # type: ignore[arg-type]
    return ctx.results[key].rps


async def rewrite_aof_first(client: Any) -> None:
    """Rewrite Redis's AOF now, so an automatic rewrite does not start inside a level.

    The bench's own writes grow the AOF enough to trigger automatic rewrites (AOF
    `everysec`, as the embedded default). A rewrite forks a child that runs on
    Redis's core, which this layout shares with the load generator: one landed in
    a 5 s level and gave it a 23 ms p99 while the next, faster level had 5 ms.
    In production Redis does not share its cores with the clients.
    """
    if int((await client.info("persistence")).get("aof_enabled", 0)) != 1:
        return
    await client.bgrewriteaof()
    while True:
        info = await client.info("persistence")
        if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
            return
        await asyncio.sleep(0.05)


@scenario("open-loop", order=100)
async def open_loop(ctx: Ctx) -> list[Row]:
    pool = ctx.pool

    def get(i: int) -> bytes:
        return http_request("GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g")

    targets = await seed_sessions(ctx.store, "bench-ol", 32)
    body = {"role": "user", "content": CONTENT_256}

    def append(i: int) -> bytes:
        return http_request(
            "POST", f"{SESSIONS}/{targets[i % len(targets)]}/messages", "bench-ol", body
        )

    rows = []
    bodies: list[bytes] = []
    for key, factory in (("get", get), ("append", append)):
        maximum = await _maximum(ctx, key, factory)
        for level in LEVELS:
            rate = maximum * level
            await rewrite_aof_first(ctx.store.client)
            r = await ctx.open_loop(
                f"open-loop {key} @{level:.0%} of max ({rate:,.0f}/s)", factory, rate,
                keep_bodies=key == "append", first_index=len(bodies),
            )  # fmt: skip
            ctx.results[f"open-loop {key} {level:.0%}"] = r
            bodies += r.bodies
            r.bodies = []
            rows.append(ctx.row(r, _check(r, rate)))
    check, failed = await append_check(ctx.store, bodies, targets, "bench-ol")
    rows[-1].check += f"; all levels: {check}"
    rows[-1].check_failed = failed
    return rows


def _check(r: Result, rate: float) -> str:
    behind = "" if r.rps >= rate * 0.97 else f", BEHIND: {r.rps / rate:.0%} of the rate"
    return f"{r.note}{behind}"
