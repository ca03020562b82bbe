"""Seeding data straight through the store, and the exactly-once check of appends.

Every call into the service's store API from the bench is in this module, so a
change of that API is one edit here.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import orjson

from session_service.domain.ids import new_session_id
from session_service.store.sessions import NewSession, SessionStore

CONTENT_256 = ("x" * 250) + " 256b."
TITLE_WORDS = [
    "database", "timeout", "latency", "kafka", "lag", "disk", "pressure", "pod",
    "crashloop", "dns", "tls", "cert",
]  # fmt: skip


async def seed_sessions(
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
            await store.create(user, new)
        ids.append(sid)

    # Batches keep the number of pending coroutines (and memory) flat.
    for start in range(0, count, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 5000))))
    return ids


async def append_one(store: SessionStore, user: str, sid: str, role: str, content: str) -> None:
    await store.append(user, sid, role, content)


async def current_etags(store: SessionStore, user: str, sids: list[str], kind: str) -> list[str]:
    """The session's ('s') or messages collection's ('m') ETag of each session."""
    return [await store.current_etag(user, sid, kind) for sid in sids]


async def seed_messages(store: SessionStore, user: str, sid: str, count: int) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await append_one(store, user, sid, "user" if i % 2 else "assistant", CONTENT_256)

    # Appends to one session are serialized by Redis anyway; batches keep memory flat.
    for start in range(0, count, 5000):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 5000))))


async def walk(store: SessionStore, user: str, sid: str) -> AsyncIterator[dict[str, object]]:
    """The whole conversation, oldest first, read by pages from exclusive cursors."""
    after = None
    while True:
        _, page, more, _ = await store.messages_page(user, sid, 500, "asc", after, None)
        for m in page:
            yield m
        if not more or not page:
            return
        after = str(page[-1]["message_id"])


async def append_check(
    store: SessionStore, bodies: list[bytes], sessions: list[str], user: str
) -> tuple[str, bool]:
    """No lost, no duplicated message: every 201 is stored exactly once, nothing else is."""
    acked: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for body in bodies:
        data = orjson.loads(body)
        if "message" not in data:
            continue
        pair = (data["session_id"], data["message"]["message_id"])
        duplicates += pair in seen
        seen.add(pair)
        acked[data["session_id"]] += 1
    lost = extra = 0
    for sid in sessions:
        stats = await store.stats(user, sid)
        stored = {m["message_id"] async for m in walk(store, user, sid)}
        mine = {mid for s, mid in seen if s == sid}
        lost += len(mine - stored)
        extra += len(stored) - len(mine & stored)
        if stats["message_count"] != len(stored):
            extra += abs(stats["message_count"] - len(stored))
    failed = bool(lost or duplicates or extra)
    acked_total = sum(acked.values())
    return f"acked {acked_total}, lost {lost}, duplicated {duplicates}, extra {extra}", failed
