"""Reads whose cost must not grow with the data: pages, lists, search; and the mixed chat."""

from __future__ import annotations

import random

from bench.context import SESSIONS, Ctx
from bench.loadgen import http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, TITLE_WORDS

BIG_USER_SESSIONS = 10_000


@scenario("messages", order=50)
async def message_pages(ctx: Ctx) -> list[Row]:
    small_user, small = await ctx.conversation(100)
    big_n = ctx.largest_messages
    big_user, big = await ctx.conversation(big_n)
    mid = f"msg_{big_n // 2:010d}&limit=50"
    results = []
    for label, user, sid, query in (
        ("list messages page @100", small_user, small, "limit=50"),
        (f"list messages page @{big_n:,}", big_user, big, "limit=50"),
        (f"list messages asc mid-walk @{big_n:,}", big_user, big, f"order=asc&after={mid}"),
    ):  # fmt: skip
        path = f"{SESSIONS}/{sid}/messages?{query}"
        results.append(
            await ctx.load(
                label, lambda i, p=path, u=user: http_request("GET", p, u),
                cost="messages page" if not results else None,
            )
        )  # fmt: skip
    base = results[0].percentile(50) or 1
    return [ctx.row(r, f"p50 {r.percentile(50) / base:.2f}x of @100") for r in results]


async def _users(ctx: Ctx) -> tuple[int, int]:
    many = 1_000 if ctx.quick else BIG_USER_SESSIONS
    await ctx.user_with_sessions("bench-l10", 10)
    await ctx.user_with_sessions("bench-l10k", many)
    return 10, many


@scenario("list", order=60)
async def session_pages(ctx: Ctx) -> list[Row]:
    few, many = await _users(ctx)
    results = []
    for user_id, n in (("bench-l10", few), ("bench-l10k", many)):
        results.append(
            await ctx.load(
                f"list sessions page @{n:,}",
                lambda i, u=user_id: http_request("GET", f"{SESSIONS}?limit=20", u),
                cost="list sessions page" if not results else None,
            )
        )
    base = results[0].percentile(50) or 1
    return [ctx.row(r, f"p50 {r.percentile(50) / base:.2f}x of @10") for r in results]


@scenario("search", order=70)
async def search(ctx: Ctx) -> list[Row]:
    _, many = await _users(ctx)
    r = await ctx.load(
        f"search @{many:,} sessions (query)",
        lambda i: http_request(
            "POST", f"{SESSIONS}/search", "bench-l10k",
            {"query": TITLE_WORDS[i % len(TITLE_WORDS)], "limit": 20},
        ),
        connections=1,
    )  # fmt: skip
    return [ctx.row(r, "1 connection: latency of one search")]


# 1 create : 20 append : 10 get : 5 list messages : 2 list sessions : 5 heartbeat
MIX = (
    ["create"]
    + ["append"] * 20
    + ["get"] * 10
    + ["messages"] * 5
    + ["list"] * 2
    + ["heartbeat"] * 5
)


@scenario("mixed", order=80)
async def mixed(ctx: Ctx) -> list[Row]:
    rng = random.Random(11)
    order = MIX * 50
    rng.shuffle(order)
    user = "bench-g"
    pool = ctx.pool

    def factory(i: int) -> bytes:
        op = order[i % len(order)]
        sid = pool[(i * 7919) % len(pool)]
        if op == "create":
            return http_request("POST", SESSIONS, f"bench-x{i // 2000}", {"client_id": f"ext-{i}"})
        if op == "append":
            return http_request(
                "POST", f"{SESSIONS}/{sid}/messages", user,
                {"role": "assistant", "content": CONTENT_256},
            )  # fmt: skip
        if op == "get":
            return http_request("GET", f"{SESSIONS}/{sid}", user)
        if op == "messages":
            return http_request("GET", f"{SESSIONS}/{sid}/messages?limit=20", user)
        if op == "list":
            return http_request("GET", f"{SESSIONS}?limit=20", user)
        return http_request("POST", f"{SESSIONS}/{sid}/heartbeat", user)

    r = await ctx.load("mixed chat workload (1:20:10:5:2:5)", factory)
    ctx.results["mixed"] = r
    return [ctx.row(r, "create:append:get:msgs:list:heartbeat")]
