"""The rows measured without the service: ceilings (a), (b), (c) and memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from bench.ceilings import CEILING_KEY
from bench.context import Ctx
from bench.harness import HOST
from bench.loadgen import http_request, run_load
from bench.rediscost import cost_between, snapshot
from bench.report import Row
from bench.resp import pack, run_commands
from bench.seed import CONTENT_256, append_one, seed_sessions
from session_service.domain.ids import new_session_id


async def ceilings(ctx: Ctx) -> list[Row]:
    bench, store = ctx.bench, ctx.store
    rows: list[Row] = []
    await store.client.set(CEILING_KEY, orjson.dumps({"session_id": "sess_x", "status": "active"}))
    async with bench.serve("bench.ceilings:json_app") as port:
        r = await bench.with_cpu(run_load(
            "(a) ceiling: bare ASGI JSON", HOST, port, lambda i: http_request("GET", "/", "u"),
            connections=bench.connections, duration=bench.duration,
        ))  # fmt: skip
        rows.append(Row.from_result(r, 0))
    async with bench.serve("bench.ceilings:redis_app") as port:
        r = await bench.with_cpu(run_load(
            "(b) ceiling: bare ASGI + one redis-py GET", HOST, port,
            lambda i: http_request("GET", "/", "u"),
            connections=bench.connections, duration=bench.duration,
        ))  # fmt: skip
        bench.ceiling_b_rps = r.rps
        bench.ceiling_b_us = r.server_us
        rows.append(Row.from_result(r, r.rps))
    rows += await _raw(ctx)
    return rows


async def _captured(ctx: Ctx, call: Callable[[], Awaitable[object]]) -> list[Any]:
    """The EVALSHA arguments a real store call sends, so the raw rows follow the scripts."""
    client = ctx.store.client
    original = client.evalsha
    seen: list[tuple[Any, ...]] = []

    async def spy(*args: Any) -> Any:
        seen.append(args)
        return await original(*args)

    client.evalsha = spy
    try:
        await call()
    finally:
        del client.evalsha  # the instance attribute shadowed the method
    return ["EVALSHA", *seen[-1]]


async def _raw(ctx: Ctx) -> list[Row]:
    """(c) the raw command rate of what the hot operations send: no HTTP, no Python client.

    Each run's Redis cost is kept as the "raw command" of its operation.
    """
    bench, store = ctx.bench, ctx.store
    user = "bench-raw"
    sid = (await seed_sessions(store, user, 1))[0]
    key = store.keys.session(user, sid)
    append = await _captured(ctx, lambda: append_one(store, user, sid, "user", CONTENT_256))
    heartbeat = await _captured(ctx, lambda: store.heartbeat(user, sid))
    create = await _captured(ctx, lambda: seed_sessions(store, "bench-raw-c", 1))

    def create_args(i: int) -> bytes:
        # A new session each time, 1,000 per user so that none reaches its limit.
        args = list(create)
        args[3], args[4] = store.keys.base(f"bench-raw-c{i // 1000}"), new_session_id()
        return pack(*args)

    timed = {
        "get": ("(c) raw Redis: GET", lambda i: pack("GET", CEILING_KEY)),
        "get session": ("(c) raw Redis: HGETALL session", lambda i: pack("HGETALL", key)),
        "append": ("(c) raw Redis: EVALSHA append", lambda i: pack(*append)),
    }
    # Cost only (no row): the other scripts of the hot operations, as the service sends them.
    untimed = {"create": create_args, "heartbeat": lambda i: pack(*heartbeat)}
    rows = []
    for op, (name, factory) in timed.items():
        before = await snapshot(store.client)
        r = await run_commands(
            name, bench.redis_host, bench.redis_port, factory,
            connections=bench.connections, duration=min(bench.duration, 3),
        )  # fmt: skip
        ctx.raw_costs[op] = cost_between(before, await snapshot(store.client), r.requests)
        rows.append(Row.from_result(r, bench.ceiling_b_rps))
    for op, factory in untimed.items():
        before = await snapshot(store.client)
        r = await run_commands(
            op, bench.redis_host, bench.redis_port, factory, connections=8, duration=0.5
        )
        ctx.raw_costs[op] = cost_between(before, await snapshot(store.client), r.requests)
    await store.delete(user, sid)
    return rows


async def memory(ctx: Ctx) -> list[Row]:
    """Redis bytes per empty session (with index entries) and per 256-byte message."""
    store, quick = ctx.store, ctx.quick
    client = store.client
    # Valkey frees a FLUSHALL in the background by default; SYNC makes "before" true.
    await client.execute_command("FLUSHALL", "SYNC")
    n_sessions = 2_000 if quick else 10_000

    async def used() -> int:
        previous = -1
        while True:  # settle: lazy frees and client buffers come and go
            await asyncio.sleep(0.1)
            now = int((await client.info("memory"))["used_memory"])
            if abs(now - previous) < 4096:
                return now
            previous = now

    before = await used()
    users = [f"bench-mem-{i}" for i in range(100)]
    per_user = n_sessions // len(users)
    sessions: list[tuple[str, str]] = []
    for u in users:
        for sid in await seed_sessions(store, u, per_user):
            sessions.append((u, sid))
    after_sessions = await used()
    per_session = (after_sessions - before) / len(sessions)

    n_messages = 10_000 if quick else 50_000
    targets = sessions[:100]
    sem = asyncio.Semaphore(64)

    async def add(i: int) -> None:
        u, sid = targets[i % len(targets)]
        async with sem:
            await append_one(store, u, sid, "user", CONTENT_256)

    for start in range(0, n_messages, 5000):
        await asyncio.gather(*(add(i) for i in range(start, min(n_messages, start + 5000))))
    after_messages = await used()
    per_message = (after_messages - after_sessions) / n_messages
    await client.flushall()
    return [
        Row(
            f"memory: bytes per empty session ({len(sessions):,})",
            check=f"{per_session:,.0f} B (target <= 1024{'' if per_session <= 1024 else ', OVER'})",
        ),
        Row(
            f"memory: bytes per 256 B message ({n_messages:,})",
            check=f"{per_message:,.0f} B = content + {per_message - 256:,.0f} (target <= +200)",
        ),
    ]
