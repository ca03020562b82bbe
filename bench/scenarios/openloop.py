"""Open-loop latency of get and append at fixed fractions of their measured maximum."""

from __future__ import annotations

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
