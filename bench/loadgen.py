"""A minimal HTTP/1.1 keep-alive load generator on raw asyncio protocols (uvloop).

httpx costs far more CPU per request than the server under test, so it would
measure itself. This client pre-encodes requests and parses only the status
line and Content-Length, which keeps it well ahead of one server core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

Request = bytes
RequestFactory = Callable[[int], Request]


def http_request(
    method: str, path: str, user: str, body: object | None = None, extra: str = ""
) -> bytes:
    payload = b"" if body is None else orjson.dumps(body)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nX-User-ID: {user}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.head = False  # a HEAD's answer has headers only, whatever Content-Length says

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._try_complete()

    def _try_complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        status = int(head[9:12])
        start = head.find(b"content-length:")
        if self.head or status in (204, 304):
            body = b""
            del self.buffer[: end + 4]
        elif start < 0:
            # Chunked: wait for the terminating chunk.
            stop = self.buffer.find(b"\r\n0\r\n\r\n", end)
            if stop < 0:
                return
            body = bytes(self.buffer[end + 4 : stop])
            del self.buffer[: stop + 7]
        else:
            stop_line = head.find(b"\r\n", start)
            length = int(head[start + 15 : stop_line if stop_line > 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.head = data.startswith(b"HEAD ")
        self.transport.write(data)
        return await self.waiter


@dataclass
class Result:
    name: str
    requests: int = 0
    errors: int = 0
    warm_requests: int = 0  # sent before measuring (they still cost Redis)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    note: str = ""
    server_us: float | None = None  # server CPU microseconds per request, when measured
    _sorted: list[float] = field(default_factory=list, repr=False)
    _sorted_len: int = -1

    def record(self, latency: float, status: int, ok_status: tuple[int, ...]) -> None:
        self.latencies.append(latency)
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status not in ok_status:
            self.errors += 1

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Milliseconds; nearest rank, so p99.9 of 10,000 samples is the 10th slowest."""
        if not self.latencies:
            return 0.0
        if self._sorted_len != len(self.latencies):
            self._sorted = sorted(self.latencies)
            self._sorted_len = len(self.latencies)
        ordered = self._sorted
        index = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
        return ordered[index] * 1000


async def _warm_up(conns: list[_Connection], factory: RequestFactory, seconds: float) -> int:
    """Fill pools and caches before measuring; the requests are not timed. Returns their number."""
    deadline = time.perf_counter() + seconds
    counter = 10**9  # distinct from the measured requests' indices

    async def warm(conn: _Connection) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            await conn.request(factory(counter))

    await asyncio.gather(*(warm(c) for c in conns))
    return counter - 10**9


async def run_load(
    name: str,
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    connections: int = 32,
    duration: float = 5.0,
    max_requests: int | None = None,
    ok_status: tuple[int, ...] = (200, 201, 204),
    keep_bodies: bool = False,
    warmup: float = 0.5,
    fresh: bool = False,
) -> Result:
    """Closed-loop load: each connection sends its next request when the last returns.

    With `fresh`, every request opens its own TCP connection and closes it after the
    reply, as the platform's gateway does (a new httpx.AsyncClient per request); the
    latency then includes the connect.
    """
    loop = asyncio.get_running_loop()
    if fresh:
        return await _run_fresh(name, host, port, factory, connections, duration, ok_status)
    conns = []
    for _ in range(connections):
        _, proto = await loop.create_connection(_Connection, host, port)
        conns.append(proto)
    result = Result(name)
    counter = 0
    deadline = float("inf")

    async def worker(conn: _Connection) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            if max_requests is not None and counter >= max_requests:
                return
            i = counter
            counter += 1
            started = time.perf_counter()
            try:
                status, body = await conn.request(factory(i))
            except ConnectionError:
                result.errors += 1
                return
            result.record(time.perf_counter() - started, status, ok_status)
            if keep_bodies:
                result.bodies.append(body)

    if warmup > 0 and max_requests is None:
        result.warm_requests = await _warm_up(conns, factory, warmup)
    started = time.perf_counter()
    deadline = started + duration if max_requests is None else float("inf")
    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - started
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return result


async def _run_fresh(
    name: str,
    host: str,
    port: int,
    factory: RequestFactory,
    concurrency: int,
    duration: float,
    ok_status: tuple[int, ...],
) -> Result:
    loop = asyncio.get_running_loop()
    result = Result(name)
    counter = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            i = counter
            counter += 1
            started = time.perf_counter()
            try:
                transport, conn = await loop.create_connection(_Connection, host, port)
                try:
                    status, _ = await conn.request(factory(i))
                finally:
                    transport.close()
            except OSError:
                result.errors += 1
                continue
            result.record(time.perf_counter() - started, status, ok_status)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
