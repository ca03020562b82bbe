"""The change feed: 1,000 SSE watchers on one worker while appends go on.

Each watched session has one watcher (8 sessions of each of 125 users, under
MAX_WATCHERS_PER_USER). Rows:

- delivery latency of message events at 200 appends/s spread over the watched
  sessions: from the message's commit (its `timestamp`, Redis time, ms) to its
  arrival at the watcher, with the server CPU per delivered event (the CPU of the
  same appends without watchers subtracted);
- memory per idle watcher: the server's RSS growth with 1,000 open feeds;
- closed-loop appends over the watched sessions with 1,000 watchers, against none.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.context import SESSIONS, Ctx
from bench.harness import HOST
from bench.loadgen import Result, http_request
from bench.registry import scenario
from bench.report import Row
from bench.seed import CONTENT_256, seed_sessions

USERS = 125
PER_USER = 8
RATE = 200.0
_MESSAGE = re.compile(rb"event: message\nid: [^\n]*\ndata: ([^\n]*)\n\n")
_EVENT = re.compile(rb"\nevent: ")


class _Watcher(asyncio.Protocol):
    """One SSE feed, read as raw bytes (events never straddle a chunk: one write each)."""

    def __init__(self, latencies: list[float], counts: list[int]) -> None:
        self.latencies = latencies
        self.counts = counts
        self.opened = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self._buffer += data
        if not self.opened.done() and b"event: session" in self._buffer:
            self.opened.set_result(None)
        self.counts[0] += len(_EVENT.findall(b"\n" + data))
        end = 0
        for found in _MESSAGE.finditer(self._buffer):
            message = orjson.loads(found.group(1))
            committed = datetime.fromisoformat(message["timestamp"]).timestamp()
            self.latencies.append(arrived - committed)
            end = found.end()
        self._buffer = self._buffer[end:][-65536:]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


@scenario("feed", order=125)
async def feed(ctx: Ctx) -> list[Row]:
    users = 10 if ctx.quick else USERS
    watched: list[tuple[str, str]] = []
    for u in range(users):
        user = f"bench-feed-{u}"
        watched += [(user, sid) for sid in await seed_sessions(ctx.store, user, PER_USER)]
    body = {"role": "user", "content": CONTENT_256}

    def append(i: int) -> bytes:
        user, sid = watched[i % len(watched)]
        return http_request("POST", f"{SESSIONS}/{sid}/messages", user, body)

    rows: list[Row] = []
    n = f"{len(watched):,}"
    alone = await ctx.load(f"append, {n} sessions, no watchers", append)
    rows.append(ctx.row(alone))
    seconds = ctx.bench.duration * 2
    quiet = await ctx.open_loop("200 appends/s, no watchers", append, RATE, duration=seconds)
    cpu_alone = (quiet.server_us or 0.0) * quiet.requests

    pid = ctx.bench.servers[-1]
    rss_before = _rss_kib(pid)
    latencies: list[float] = []
    counts = [0]
    loop = asyncio.get_running_loop()
    watchers: list[_Watcher] = []
    for user, sid in watched:
        transport, proto = await loop.create_connection(
            lambda: _Watcher(latencies, counts), HOST, ctx.port
        )
        proto.transport = transport
        transport.write(
            http_request(
                "GET", f"{SESSIONS}/{sid}/events", user, None, "Accept: text/event-stream\r\n"
            )
        )
        watchers.append(proto)
    await asyncio.wait_for(asyncio.gather(*(w.opened for w in watchers)), 120)
    await asyncio.sleep(1.0)  # let allocations settle before measuring
    rss_idle = _rss_kib(pid)
    per_watcher = (rss_idle - rss_before) / len(watchers)
    try:
        counts[0] = 0
        loaded = await ctx.open_loop(f"200 appends/s, {n} watchers", append, RATE, duration=seconds)
        await asyncio.sleep(1.0)  # the last events arrive
        delivered = counts[0]
        cpu_with = (loaded.server_us or 0.0) * loaded.requests
        per_event = (cpu_with - cpu_alone) / delivered if delivered else 0.0
        events = Result(f"feed: {len(watchers)} watchers, 200 appends/s (delivery)")
        p50, p99 = _percentile(latencies, 50), _percentile(latencies, 99)
        rows.append(
            Row(
                events.name, rps=delivered / seconds, p50=p50, p99=p99,
                server_us=per_event, errors=loaded.errors,
                check=(
                    f"{len(latencies)} messages + {delivered - len(latencies)} other events "
                    f"delivered; commit -> client, ms resolution; p99 target < 50 ms: "
                    f"{'met' if p99 < 50 else 'NOT met'}; cpu us = per delivered event"
                ),
            )
        )  # fmt: skip
        rows.append(
            Row(
                "feed: memory per idle watcher",
                check=f"{per_watcher:.1f} KiB (RSS {rss_before} -> {rss_idle} KiB with "
                f"{len(watchers)} feeds; target < 20 KiB)",
            )
        )
        crowded = await ctx.load(f"append, {n} sessions, {n} watchers", append)
        ratio = crowded.rps / alone.rps if alone.rps else 0.0
        rows.append(
            ctx.row(crowded, f"{ratio:.2f} x the appends/s with no watchers (target >= 0.9)")
        )
    finally:
        for watcher in watchers:
            if watcher.transport is not None:
                watcher.transport.close()
    return rows
