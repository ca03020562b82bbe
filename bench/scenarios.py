"""The scenarios: ceilings, the service's operations, flat-cost checks and memory."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import orjson

from bench.ceilings import CEILING_KEY
from bench.harness import HOST, Bench
from bench.loadgen import Result, http_request, run_load
from bench.report import Row
from bench.resp import pack, run_commands
from session_service.domain.ids import new_session_id
from session_service.store.sessions import NewSession, SessionStore

SESSIONS = "/api/v1/sessions"
CONTENT_256 = ("x" * 250) + " 256b."
TITLE_WORDS = [
    "database",
    "timeout",
    "latency",
    "kafka",
    "lag",
    "disk",
    "pressure",
    "pod",
    "crashloop",
    "dns",
    "tls",
    "cert",
]


def _store(bench: Bench) -> SessionStore:
    assert bench.store is not None
    return bench.store


async def _seed_sessions(
    store: SessionStore, user: str, count: int, texts: bool = False
) -> list[str]:
    rng = random.Random(7)
    ids: list[str] = []
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        title = desc = None
        if texts:
            words = rng.sample(TITLE_WORDS, 4)
            title = f"Investigating {' '.join(words)} in production cluster {i:05d}"[:60]
            desc = (f"Customer reports {words[0]} issues after deploy {i}; " * 6)[:200]
        sid = new_session_id()
        new = NewSession.build(sid, 86_400_000, title=title, description=desc)
        async with sem:
            await store.create(user, new, None, "")
        ids.append(sid)

    await asyncio.gather(*(one(i) for i in range(count)))
    return ids


async def _seed_messages(store: SessionStore, user: str, sid: str, count: int) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await store.append(
                user, sid, "user" if i % 2 else "assistant", CONTENT_256, None, None, None, ""
            )

    # Appends to one session are serialized by Redis anyway; batches keep memory flat.
    for start in range(0, count, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 5000))))


async def ceilings(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    store = _store(bench)
    await store.client.set(CEILING_KEY, orjson.dumps({"session_id": "sess_x", "status": "active"}))
    async with bench.serve("bench.ceilings:json_app") as port:
        r = await run_load(
            "(a) ceiling: bare ASGI JSON",
            HOST,
            port,
            lambda i: http_request("GET", "/", "u"),
            connections=bench.connections,
            duration=bench.duration,
        )
        rows.append(Row.from_result(r, 0))
    async with bench.serve("bench.ceilings:redis_app") as port:
        r = await run_load(
            "(b) ceiling: bare ASGI + one redis-py GET",
            HOST,
            port,
            lambda i: http_request("GET", "/", "u"),
            connections=bench.connections,
            duration=bench.duration,
        )
        bench.ceiling_b_rps = r.rps
        rows.append(Row.from_result(r, r.rps))
    # (c) the raw command rate of what the hot operations send, no HTTP, no Python client.
    user = "bench-raw"
    sid = (await _seed_sessions(store, user, 1))[0]
    key = store.keys.session(user, sid)
    base = store.keys.base(user)
    script = store.scripts.append
    await store.client.script_load(script.source)
    commands = {
        "(c) raw Redis: GET": lambda i: pack("GET", CEILING_KEY),
        "(c) raw Redis: HGETALL session": lambda i: pack("HGETALL", key),
        "(c) raw Redis: EVALSHA append": lambda i: pack(
            "EVALSHA", script.sha, 1, base, sid, "user", CONTENT_256, "", "", "", "", "", 10**9, 1
        ),
    }
    for name, factory in commands.items():
        r = await run_commands(
            name,
            bench.redis_host,
            bench.redis_port,
            factory,
            connections=bench.connections,
            duration=min(bench.duration, 3),
        )
        rows.append(Row.from_result(r, bench.ceiling_b_rps))
    await store.delete(user, sid)
    return rows


def _ok(status_counts: dict[int, int], *codes: int) -> int:
    return sum(n for code, n in status_counts.items() if code in codes)


async def _append_check(
    bench: Bench, result: Result, hot: list[str], user: str
) -> tuple[str, bool]:
    """No lost, no duplicated message: every 201 is stored exactly once, nothing else is."""
    acked: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for body in result.bodies:
        data = orjson.loads(body)
        if "message" not in data:
            continue
        pair = (data["session_id"], data["message"]["message_id"])
        duplicates += pair in seen
        seen.add(pair)
        acked[data["session_id"]] += 1
    store = _store(bench)
    lost = extra = 0
    for sid in hot:
        stats = await store.stats(user, sid)
        stored = {m["message_id"] async for m in _walk(store, user, sid)}
        mine = {mid for s, mid in seen if s == sid}
        lost += len(mine - stored)
        extra += len(stored) - len(mine & stored)
        if stats["message_count"] != len(stored):
            extra += abs(stats["message_count"] - len(stored))
    failed = bool(lost or duplicates or extra)
    acked_total = sum(acked.values())
    return f"acked {acked_total}, lost {lost}, duplicated {duplicates}, extra {extra}", failed


async def _walk(store: SessionStore, user: str, sid: str):  # type: ignore[no-untyped-def]
    after = None
    while True:
        _, page, more = await store.messages_page(user, sid, 500, "asc", after, None)
        for m in page:
            yield m
        if not more or not page:
            return
        after = page[-1]["message_id"]


async def service_scenarios(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    async with bench.serve("service") as port:
        pool = await _seed_sessions(_store(bench), "bench-g", 200 if bench.quick else 1000)
        for name, scenario in (
            ("create", _create),
            ("get", _get),
            ("append", _append),
            ("messages", _message_pages),
            ("list", _session_pages),
            ("search", _search),
            ("mixed", _mixed),
        ):
            if bench.wants(name):
                rows += await scenario(bench, port, pool)
    return rows


async def _load(bench: Bench, port: int, name: str, factory: Any, **kw: Any) -> Result:
    kw.setdefault("connections", bench.connections)
    return await run_load(name, HOST, port, factory, duration=bench.duration, **kw)


async def _create(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    # Users rotate so that none reaches its session limit.
    body = {"title": "Disk pressure on node-7"}
    r = await _load(
        bench, port, "create session",
        lambda i: http_request("POST", SESSIONS, f"bench-c{i // 2000}", body),
    )  # fmt: skip
    return [Row.from_result(r, bench.ceiling_b_rps, f"201s {_ok(r.statuses, 201)}")]


async def _get(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    r = await _load(
        bench, port, "get session",
        lambda i: http_request("GET", f"{SESSIONS}/{pool[i % len(pool)]}", "bench-g"),
    )  # fmt: skip
    return [Row.from_result(r, bench.ceiling_b_rps)]


async def _append(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    hot = await _seed_sessions(_store(bench), "bench-a", 4)
    body = {"role": "user", "content": CONTENT_256}
    r = await _load(
        bench, port, "append message (64 writers, 4 hot sessions)",
        lambda i: http_request("POST", f"{SESSIONS}/{hot[i % 4]}/messages", "bench-a", body),
        connections=64, keep_bodies=True, warmup=0,
    )  # fmt: skip
    check, failed = await _append_check(bench, r, hot, "bench-a")
    return [Row.from_result(r, bench.ceiling_b_rps, check, failed)]


async def _message_pages(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    store = _store(bench)
    small, big = await _seed_sessions(store, "bench-m", 2)
    big_n = 5_000 if bench.quick else 100_000
    await _seed_messages(store, "bench-m", small, 100)
    await _seed_messages(store, "bench-m", big, big_n)
    mid = f"msg_{big_n // 2:010d}"
    results = []
    for label, sid, query in (
        ("list messages page @100", small, "limit=50"),
        (f"list messages page @{big_n:,}", big, "limit=50"),
        (f"list messages asc mid-walk @{big_n:,}", big, f"order=asc&limit=50&after={mid}"),
    ):
        path = f"{SESSIONS}/{sid}/messages?{query}"
        results.append(
            await _load(bench, port, label, lambda i, p=path: http_request("GET", p, "bench-m"))
        )
    base = results[0].percentile(50) or 1
    return [
        Row.from_result(r, bench.ceiling_b_rps, f"p50 {r.percentile(50) / base:.2f}x of @100")
        for r in results
    ]


async def _seed_users(bench: Bench) -> tuple[int, int]:
    few, many = 10, (1_000 if bench.quick else 10_000)
    if not bench.seeded_users:
        await _seed_sessions(_store(bench), "bench-l10", few, texts=True)
        await _seed_sessions(_store(bench), "bench-l10k", many, texts=True)
        bench.seeded_users = True
    return few, many


async def _session_pages(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    few, many = await _seed_users(bench)
    results = []
    for user_id, n in (("bench-l10", few), ("bench-l10k", many)):
        results.append(
            await _load(
                bench, port, f"list sessions page @{n:,}",
                lambda i, u=user_id: http_request("GET", f"{SESSIONS}?limit=20", u),
            )
        )  # fmt: skip
    base = results[0].percentile(50) or 1
    return [
        Row.from_result(r, bench.ceiling_b_rps, f"p50 {r.percentile(50) / base:.2f}x of @10")
        for r in results
    ]


async def _search(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    _, many = await _seed_users(bench)
    r = await _load(
        bench, port, f"search @{many:,} sessions (query)",
        lambda i: http_request(
            "POST", f"{SESSIONS}/search", "bench-l10k",
            {"query": TITLE_WORDS[i % len(TITLE_WORDS)], "limit": 20},
        ),
        connections=1,
    )  # fmt: skip
    return [Row.from_result(r, bench.ceiling_b_rps, "1 connection: latency of one search")]


# 1 create : 20 append : 10 get : 5 list messages : 2 list sessions : 5 heartbeat
MIX = (
    ["create"]
    + ["append"] * 20
    + ["get"] * 10
    + ["messages"] * 5
    + ["list"] * 2
    + ["heartbeat"] * 5
)


async def _mixed(bench: Bench, port: int, pool: list[str]) -> list[Row]:
    rng = random.Random(11)
    order = MIX * 50
    rng.shuffle(order)
    user = "bench-g"

    def factory(i: int) -> bytes:
        op = order[i % len(order)]
        sid = pool[(i * 7919) % len(pool)]
        if op == "create":
            return http_request("POST", SESSIONS, f"bench-x{i // 2000}", {"client_id": f"ext-{i}"})
        if op == "append":
            return http_request(
                "POST",
                f"{SESSIONS}/{sid}/messages",
                user,
                {"role": "assistant", "content": CONTENT_256},
            )
        if op == "get":
            return http_request("GET", f"{SESSIONS}/{sid}", user)
        if op == "messages":
            return http_request("GET", f"{SESSIONS}/{sid}/messages?limit=20", user)
        if op == "list":
            return http_request("GET", f"{SESSIONS}?limit=20", user)
        return http_request("POST", f"{SESSIONS}/{sid}/heartbeat", user)

    r = await run_load(
        "mixed chat workload (1:20:10:5:2:5)",
        HOST,
        port,
        factory,
        connections=bench.connections,
        duration=bench.duration,
    )
    return [Row.from_result(r, bench.ceiling_b_rps, "create:append:get:msgs:list:heartbeat")]


async def memory(bench: Bench) -> list[Row]:
    """Redis bytes per empty session (with index entries) and per 256-byte message."""
    store = _store(bench)
    client = store.client
    # Valkey frees a FLUSHALL in the background by default; SYNC makes "before" true.
    await client.execute_command("FLUSHALL", "SYNC")
    n_sessions = 2_000 if bench.quick else 10_000

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
        for sid in await _seed_sessions(store, u, per_user):
            sessions.append((u, sid))
    after_sessions = await used()
    per_session = (after_sessions - before) / len(sessions)

    n_messages = 10_000 if bench.quick else 50_000
    targets = sessions[:100]
    sem = asyncio.Semaphore(64)

    async def add(i: int) -> None:
        u, sid = targets[i % len(targets)]
        async with sem:
            await store.append(u, sid, "user", CONTENT_256, None, None, None, "")

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
