"""Whether an operation stalls Redis: a separate process PINGs the server while the
operation runs, and the slowest PING is held to `BOUND_MS` plus the noise of a
calibration run under comparable load. Shared by the large-data bound tests."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from redis.asyncio import Redis

#: No Lua script may block Redis longer than this at the largest documented sizes.
BOUND_MS = 10.0

PINGER = r"""
import select, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
worst, count = 0.0, 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    started = time.perf_counter()
    s.sendall(b"PING\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += s.recv(64)
    worst, count = max(worst, time.perf_counter() - started), count + 1
print(worst * 1000, count, flush=True)
"""


async def _pinged(
    redis_url: str, operation: Callable[[], Awaitable[Any]]
) -> tuple[Any, float, int]:
    """(the operation's result, the slowest PING in ms while it ran, PINGs sent)."""
    url = urlparse(redis_url)
    pinger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PINGER, url.hostname or "127.0.0.1", str(url.port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert pinger.stdin is not None and pinger.stdout is not None
    assert (await pinger.stdout.readline()).strip() == b"ready"
    try:
        result = await operation()
    finally:
        pinger.stdin.close()
        out = (await pinger.stdout.read()).split()
        await pinger.wait()
    return result, float(out[0]), int(out[1])


async def _busy(redis: Redis, seconds: float) -> None:
    """Back-to-back cheap commands for `seconds`: the calibration's load, as close to an
    operation's (a client sending short scripts one after another) as a no-op can be."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await redis.ping()


async def stall_free(
    redis: Redis,
    redis_url: str,
    seed: Callable[[], Awaitable[Any]],
    operation: Callable[[Any], Awaitable[Any]],
    *,
    reads_only: bool = False,
) -> tuple[Any, Any]:
    """(seeded, result): `operation(seeded)` run while PINGing, after a fresh `seed()`;
    at most 3 tries. An operation that `reads_only` leaves the seeded data as it found it,
    so its tries share one seed (a seed of 50,000 sessions costs more than the read).

    A script that blocks longer than the bound does so every time; machine noise
    on a shared, loaded host rarely three times running. The margin is the slowest
    PING of a calibration run under comparable load, measured right after.
    """
    seen = []
    seeded: Any = None
    for attempt in range(3):
        if attempt == 0 or not reads_only:
            await redis.flushall()
            seeded = await seed()
        started = time.perf_counter()
        result, worst, pings = await _pinged(redis_url, lambda seeded=seeded: operation(seeded))
        took = time.perf_counter() - started
        _, noise, _ = await _pinged(redis_url, lambda took=took: _busy(redis, max(1.0, took)))
        assert pings > 0, "the pinger ran alongside the operation"
        if worst <= BOUND_MS + noise:
            return seeded, result
        seen.append(f"{worst:.1f} ms (noise {noise:.1f} ms)")
    raise AssertionError(f"a PING waited longer than {BOUND_MS} ms + noise: {seen}")
