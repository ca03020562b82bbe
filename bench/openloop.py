"""Open-loop load: requests leave on a fixed schedule, latency counts from that schedule.

The closed loop (`loadgen.run_load`) waits for a reply before sending again, so a
slow reply delays the requests behind it instead of being counted against them
(coordinated omission). Here each of `connections` keep-alive connections owns an
evenly spaced share of the schedule (as wrk2 does): request k of connection c is
due at ``t0 + (c + k * connections) / rate``. It is sent when due, or when its
connection frees up if the previous reply is late; either way its latency is
measured from when it was due. So a stall shows up in the latency of every request
that was due during it, as a user would see it.

The event loop's timers tick in milliseconds: a request may leave up to ~1 ms after
it was due, and that lateness is counted against the service too (it errs on the
side of higher latency). `Result.note` reports the generator's own send lag.
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen import RequestFactory, Result, _Connection


async def run_open_loop(
    name: str,
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    rate: float,
    duration: float,
    connections: int = 32,
    ok_status: tuple[int, ...] = (200, 201, 204),
    keep_bodies: bool = False,
    first_index: int = 0,
) -> Result:
    loop = asyncio.get_running_loop()
    conns: list[_Connection] = []
    for _ in range(connections):
        _, proto = await loop.create_connection(_Connection, host, port)
        conns.append(proto)
    result = Result(name)
    total = max(1, int(rate * duration))
    interval = 1.0 / rate
    lags: list[float] = []
    t0 = time.perf_counter() + 0.05  # every connection's first request is in the future

    async def worker(c: int, conn: _Connection) -> None:
        for k in range(c, total, connections):
            due = t0 + k * interval
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
                lags.append(max(0.0, time.perf_counter() - due))  # the generator's own lag
            try:
                status, body = await conn.request(factory(first_index + k))
            except ConnectionError:
                result.errors += 1
                return
            result.record(time.perf_counter() - due, status, ok_status)
            if keep_bodies:
                result.bodies.append(body)

    await asyncio.gather(*(worker(c, conn) for c, conn in enumerate(conns)))
    result.seconds = time.perf_counter() - t0
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    lags.sort()
    if lags:
        result.note = f"send lag p99 {lags[int(0.99 * (len(lags) - 1))] * 1000:.2f} ms"
    return result
