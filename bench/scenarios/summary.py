"""The derived rows: Redis cost per request, and the bar (issue 15) against this run's (b)."""

from __future__ import annotations

from bench.context import Ctx
from bench.registry import scenario
from bench.report import Row

# The operation -> the raw command it is compared with (measured in the (c) rows).
RAW_OF = {
    "get": "get session",
    "create": "create",
    "append": "append",
    "heartbeat": "heartbeat",
    "head": "get session",  # EXISTS, compared with the HGETALL of a get
    "get 304": "get session",
}


@scenario("redis-cost", order=120, always=True)
async def redis_cost(ctx: Ctx) -> list[Row]:
    rows = []
    plain_get = ctx.raw_costs.get("get")
    for op, cost in ctx.costs.items():
        raw = ctx.raw_costs.get(RAW_OF.get(op, ""))
        parts = [cost.describe()]
        if raw is not None and raw.usec:
            parts.append(f"raw {raw.usec:.1f} us: {cost.usec / raw.usec:.2f}x")
        if plain_get is not None and plain_get.usec:
            parts.append(f"= {cost.usec / plain_get.usec:.1f}x a raw GET")
        rows.append(Row(f"redis cost: {op}", check="; ".join(parts)))
    for op, raw in ctx.raw_costs.items():
        rows.append(Row(f"redis cost: raw {op}", check=raw.describe()))
    return rows


def _share(ctx: Ctx, key: str) -> tuple[float, str] | None:
    """The throughput share of (b), and the same judged by server CPU per request."""
    r = ctx.results.get(key)
    b = ctx.bench.ceiling_b_rps
    if r is None or not b:
        return None
    b_us = ctx.bench.ceiling_b_us
    by_cpu = f" (by cpu/req: {b_us / r.server_us:.2f})" if b_us and r.server_us else ""
    return r.rps / b, by_cpu


@scenario("bar", order=130, always=True)
async def bar(ctx: Ctx) -> list[Row]:
    """Where this run stands against the issue's targets (timings never fail the command)."""
    rows = []
    for key, target in (("get", 0.65), ("create", 0.50), ("append", 0.50), ("mixed", 0.45)):
        found = _share(ctx, key)
        if found is not None:
            share, by_cpu = found
            verdict = "meets" if share >= target else "BELOW"
            check = f"{share:.2f} x (b){by_cpu}: {verdict}"
            rows.append(Row(f"bar: {key} >= {target:.2f} x (b)", check=check))
    for key in ("get", "append"):
        r = ctx.results.get(f"open-loop {key} 60%")
        if r is not None:
            p99, p999 = r.percentile(99), r.percentile(99.9)
            verdict = "meets" if p99 < 5 and p999 < 20 else "BELOW"
            rows.append(
                Row(
                    f"bar: open-loop {key} @60%: p99 < 5, p99.9 < 20 ms",
                    check=f"p99 {p99:.2f} ms, p99.9 {p999:.2f} ms: {verdict}",
                )
            )
    get = ctx.results.get("get")
    for key in ("head", "get 304"):
        r = ctx.results.get(key)
        if r is not None and get is not None:
            verdict = "meets" if r.rps >= get.rps * 0.97 else "BELOW"
            rows.append(
                Row(
                    f"bar: {key} at least as fast as get",
                    check=f"{r.rps / get.rps:.2f} x get: {verdict}",
                )
            )
    raw = ctx.raw_costs.get("append")
    if raw is not None:
        service = ctx.costs.get("append")
        seen = f"; through the service {service.usec:.1f} us/req" if service else ""
        verdict = "meets" if raw.usec <= BEFORE_APPEND_US / 2 else "BELOW"
        rows.append(
            Row(
                "bar: append Redis time <= half of before",
                check=f"EVALSHA append {raw.usec:.1f} us, {raw.nested:.0f} calls "
                f"(before: {BEFORE_APPEND_US:g} us, 11 calls){seen}: {verdict}",
            )
        )
    return rows


# The raw append script's EVALSHA time (INFO commandstats) on main before issue 15, on
# this machine: the median of the (c) row's cost over several runs (17.5-22 us).
BEFORE_APPEND_US = 20.0
