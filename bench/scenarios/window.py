"""The prompt window (issue 13): its cost must not grow with the conversation."""

from __future__ import annotations

from bench.context import SESSIONS, Ctx
from bench.loadgen import http_request
from bench.registry import scenario
from bench.report import Row

# 256-byte messages are estimated at 64 tokens: 62 of them fit, at 100 and at 100,000.
BUDGET = 4000
TARGET = 1.3


@scenario("window", order=75)
async def window(ctx: Ctx) -> list[Row]:
    big_n = ctx.largest_messages
    results = []
    for n in (100, big_n):
        user, sid = await ctx.conversation(n)
        path = f"{SESSIONS}/{sid}/window?max_tokens={BUDGET}"
        results.append(
            await ctx.load(
                f"prompt window (62 messages) @{n:,}",
                lambda i, p=path, u=user: http_request("GET", p, u),
                cost="window" if not results else None,
            )
        )
    base = results[0].percentile(50) or 1
    rows = [ctx.row(results[0], "p50 1.00x of @100")]
    ratio = results[1].percentile(50) / base
    verdict = "" if ratio <= TARGET else ", OVER"
    rows.append(ctx.row(results[1], f"p50 {ratio:.2f}x of @100 (target <= {TARGET}x{verdict})"))
    return rows
