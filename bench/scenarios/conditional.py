"""Reads that answer without a body (HEAD a session, a 304 to If-None-Match) and an
agent's conditional append (If-Match): what ETags cost (issue 14)."""

from __future__ import annotations

from bench.context import SESSIONS, Ctx
from bench.loadgen import http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, current_etags, seed_sessions


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


@scenario("conditional", order=40)
async def conditional(ctx: Ctx) -> list[Row]:
    pool = ctx.pool
    tags = await current_etags(ctx.store, "bench-g", pool, "s")
    not_modified = await ctx.load(
        "get session, If-None-Match (304)",
        lambda i: http_request(
            "GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g",
            extra=f"If-None-Match: {tags[i % len(pool)]}\r\n",
        ),
        ok_status=(304,), cost="get 304",
    )  # fmt: skip
    ctx.results["get 304"] = not_modified
    rows = [ctx.row(not_modified, f"304s {not_modified.statuses.get(304, 0)}")]

    # One writer per session at a time, each naming the ETag its previous append left:
    # request i is the (i // n)-th to session i % n, and with far more sessions than
    # connections it is sent only after that session's previous append was answered, so
    # every one should succeed (the check column counts any 412). No warm-up, which would
    # shift the sequence.
    n = 200 if ctx.quick else 1000
    users = "bench-cond"
    hot = await seed_sessions(ctx.store, users, n)
    first = await current_etags(ctx.store, users, hot, "m")
    bases = [tag.rsplit(".m", 1)[0] for tag in first]
    body = {"role": "assistant", "content": CONTENT_256}
    appended = await ctx.load(
        "conditional append (If-Match)",
        lambda i: http_request(
            "POST", f"{SESSIONS}/{hot[i % n]}/messages", users, body,
            extra=f'If-Match: {bases[i % n]}.m{i // n}"\r\n',
        ),
        warmup=0, ok_status=(201,), cost="append-if-match",
    )  # fmt: skip
    ctx.results["append-if-match"] = appended
    refused = appended.statuses.get(412, 0)
    rows.append(ctx.row(appended, f"201s {appended.statuses.get(201, 0)}, 412s {refused}"))
    return rows
