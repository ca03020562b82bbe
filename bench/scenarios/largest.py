"""The slowest single Redis command or script seen at the largest documented sizes.

A user with 50,000 sessions and a session with 100,000 messages; every Redis
command the operations below send is logged (SLOWLOG at 0 us) and the slowest
one is reported. Redis runs one command at a time, so this is how long one
request can hold up every other client of that Redis (the bound is 10 ms).
"""

from __future__ import annotations

from typing import Any

from bench.context import SESSIONS, Ctx
from bench.harness import HOST
from bench.loadgen import http_request, run_load
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256 as LONG

BOUND_MS = 10.0
ANY_ANSWER = tuple(range(200, 500))  # a refusal (a full user) still runs its script


def _requests(ctx: Ctx, user: str, sids: list[str], conv: tuple[str, str]) -> list[bytes]:
    cu, cs = conv
    mid = f"msg_{ctx.largest_messages // 2:010d}"
    s = sids[len(sids) // 2]
    return [
        http_request("GET", f"{SESSIONS}?limit=100", user),
        http_request("GET", f"{SESSIONS}?limit=100&offset=10000", user),
        http_request("GET", f"{SESSIONS}?status=active&limit=100", user),
        http_request("POST", f"{SESSIONS}/search", user, {"query": "kafka lag", "limit": 100}),
        http_request("POST", f"{SESSIONS}/search", user, {"query": "no-such-word", "limit": 100}),
        http_request("POST", f"{SESSIONS}/search", user, {"limit": 100}),
        http_request("GET", f"{SESSIONS}/{s}", user),
        http_request("POST", f"{SESSIONS}/{s}/heartbeat", user),
        http_request("PATCH", f"{SESSIONS}/{s}", user, {"title": "renamed"}),
        http_request("POST", f"{SESSIONS}/{s}/messages", user, {"role": "user", "content": "x"}),
        http_request("POST", SESSIONS, user, {"title": "one more"}),
        http_request("POST", f"{SESSIONS}/{cs}/messages", cu, {"role": "user", "content": LONG}),
        http_request("GET", f"{SESSIONS}/{cs}/messages?limit=500", cu),
        http_request("GET", f"{SESSIONS}/{cs}/messages?order=asc&limit=500&after={mid}", cu),
        http_request("GET", f"{SESSIONS}/{cs}/stats", cu),
        http_request("GET", f"{SESSIONS}/{cs}", cu),
        http_request("POST", "/api/v1/sessions/cleanup", user),
    ]  # fmt: skip


@scenario("largest", order=110)
async def slowest_command(ctx: Ctx) -> list[Row]:
    n = ctx.largest_sessions
    user = f"bench-{n // 1000}k"
    sids = await ctx.user_with_sessions(user, n)
    conv = await ctx.conversation(ctx.largest_messages)
    requests = _requests(ctx, user, sids, conv)
    client = ctx.store.client
    old = await client.config_get("slowlog-*")
    await client.config_set("slowlog-max-len", 100_000)
    await client.config_set("slowlog-log-slower-than", 0)
    await client.slowlog_reset()
    try:
        # Each request a few times, one at a time: the slowest run of each counts.
        r = await run_load(
            "largest sizes", HOST, ctx.port, lambda i: requests[i % len(requests)],
            connections=1, max_requests=len(requests) * 5, warmup=0, ok_status=ANY_ANSWER,
        )  # fmt: skip
        entries = await client.execute_command("SLOWLOG", "GET", -1)
    finally:
        for name, value in old.items():
            await client.config_set(name, value)
    names = {script.sha: script.name for script in ctx.store.scripts.by_name.values()}
    ranked = sorted((_describe(e, names) for e in entries), reverse=True)
    (top_us, top), *rest = ranked or [(0, "nothing")]
    over = "" if top_us / 1000 <= BOUND_MS else ", OVER the bound"
    others = ", ".join(f"{what} {us / 1000:.2f}" for us, what in _distinct(rest)[:3])
    return [
        Row(
            f"slowest command @{n:,} sessions/{ctx.largest_messages:,} msgs",
            p50=None,
            errors=r.errors,
            check=f"{top} {top_us / 1000:.2f} ms (bound {BOUND_MS:g} ms{over}); next: {others}",
        )
    ]


def _describe(entry: Any, names: dict[str, str]) -> tuple[int, str]:
    # An entry is [id, timestamp, microseconds, args, client, name] (redis-py may parse it).
    if isinstance(entry, dict):
        us, args = int(entry["duration"]), entry["command"]
        args = args.split() if isinstance(args, str) else list(args)
    else:
        us, args = int(entry[2]), list(entry[3])
    args = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
    cmd = args[0].upper() if args else "?"
    if cmd in ("EVALSHA", "EVAL") and len(args) > 1:
        return us, f"script {names.get(args[1], args[1][:8])}"
    return us, cmd


def _distinct(ranked: list[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    out = []
    for us, what in ranked:
        if what not in seen:
            seen.add(what)
            out.append((us, what))
    return out
