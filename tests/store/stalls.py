"""Whether an operation stalls Redis: a separate process PINGs the server while the
operation runs and measures, for each PING, the CPU time Redis's main thread spent
between the PING and its PONG (its schedstat, in ns). A script that runs 15 ms keeps a
PING waiting through 15 ms of the main thread's CPU, on a quiet machine or a busy one.

The wall time a PING waits is no measure on a loaded machine: the scheduler stops the
server in the middle of a 3 ms script, and the PING waits 40 ms for a script that never
blocked 10. The slowest PING's CPU is held to `BOUND_MS` plus the CPU of the slowest PING
of a calibration run, measured right after. Shared by the large-data bound tests.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from redis.asyncio import Redis

#: No Lua script may block Redis longer than this at the largest documented sizes.
BOUND_MS = 10.0
#: Tries of one operation: at most 3 measured (a stall repeats, noise rarely does), and
#: more when a short operation ended before the pinger could send a PING.
MAX_TRIES = 10

PINGER = r"""
import select, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
main_thread = open(f"/proc/{sys.argv[3]}/task/{sys.argv[3]}/schedstat", "rb")

def cpu_ns():
    main_thread.seek(0)
    return int(main_thread.read().split()[0])

worst_wall, worst_cpu, count = 0.0, 0, 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    started, cpu = time.perf_counter(), cpu_ns()
    s.sendall(b"PING\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):
        reply += s.recv(64)
    worst_cpu = max(worst_cpu, cpu_ns() - cpu)
    worst_wall, count = max(worst_wall, time.perf_counter() - started), count + 1
print(worst_cpu / 1e6, worst_wall * 1000, count, flush=True)
"""


@dataclass(frozen=True)
class Pinged:
    """The slowest PING while an operation ran: Redis's CPU (ms) and wall time (ms)."""

    cpu_ms: float
    wall_ms: float
    pings: int


async def _pinged(
    redis_url: str, server_pid: int, operation: Callable[[], Awaitable[Any]]
) -> tuple[Any, Pinged]:
    """(the operation's result, the slowest PING while it ran)."""
    url = urlparse(redis_url)
    host, port = url.hostname or "127.0.0.1", str(url.port)
    pinger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PINGER, host, port, str(server_pid),
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
    return result, Pinged(float(out[0]), float(out[1]), int(out[2]))


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
    at most 3 measured tries (a try with no PING during the operation measured nothing:
    it is tried again, up to MAX_TRIES). An operation that `reads_only` leaves the seeded
    data as it found it, so its tries share one seed (a seed of 50,000 sessions costs
    more than the read).

    A script that blocks longer than the bound does so every time; the rest (the CPU a
    busy host steals from Redis through caches and interrupts) rarely three times
    running. The margin is the CPU of the slowest PING of a calibration run, measured
    right after.
    """
    server_pid = int((await redis.info("server"))["process_id"])
    seen: list[str] = []
    seeded: Any = None
    measured = 0
    for attempt in range(MAX_TRIES):
        if attempt == 0 or not reads_only:
            await redis.flushall()
            seeded = await seed()
        started = time.perf_counter()
        result, ran = await _pinged(redis_url, server_pid, lambda seeded=seeded: operation(seeded))
        took = time.perf_counter() - started
        if ran.pings == 0:
            # A read of a few ms can end before a loaded machine schedules the pinger:
            # nothing was measured, so this try says nothing either way.
            seen.append(f"no PING during the operation ({took * 1000:.1f} ms)")
            continue
        _, noise = await _pinged(
            redis_url, server_pid, lambda took=took: _busy(redis, max(1.0, took))
        )
        if ran.cpu_ms <= BOUND_MS + noise.cpu_ms:
            return seeded, result
        seen.append(
            f"{ran.cpu_ms:.1f} ms of CPU, {ran.wall_ms:.1f} ms waited "
            f"(noise {noise.cpu_ms:.1f} ms of CPU, {noise.wall_ms:.1f} ms waited)"
        )
        measured += 1
        if measured == 3:
            break
    assert measured, f"the pinger never ran alongside the operation in {MAX_TRIES} tries: {seen}"
    raise AssertionError(f"a PING waited through more than {BOUND_MS} ms of CPU + noise: {seen}")
