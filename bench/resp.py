"""Raw Redis command rate (ceiling c): RESP over asyncio with hiredis, no client library."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import hiredis

from bench.loadgen import Result


def pack(*args: str | bytes | int) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(out)


class _RespConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiter: asyncio.Future[object] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        reply = self.reader.gets()
        if reply is not False and self.waiter is not None:
            waiter, self.waiter = self.waiter, None
            waiter.set_result(reply)

    async def call(self, command: bytes) -> object:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(command)
        return await self.waiter


async def connect(host: str, port: int, count: int) -> list[_RespConnection]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(count):
        _, proto = await loop.create_connection(_RespConnection, host, port)
        out.append(proto)
    return out


async def run_commands(
    name: str,
    host: str,
    port: int,
    factory: Callable[[int], bytes],
    *,
    connections: int = 32,
    duration: float = 3.0,
) -> Result:
    conns = await connect(host, port, connections)
    result = Result(name)
    counter = 0
    deadline = time.perf_counter() + duration

    async def worker(conn: _RespConnection) -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            i = counter
            counter += 1
            started = time.perf_counter()
            reply = await conn.call(factory(i))
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            if isinstance(reply, hiredis.ReplyError):
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - started
    for conn in conns:
        assert conn.transport is not None
        conn.transport.close()
    return result


async def call_once(host: str, port: int, *commands: Sequence[str | bytes | int]) -> list[object]:
    (conn,) = await connect(host, port, 1)
    replies = [await conn.call(pack(*command)) for command in commands]
    assert conn.transport is not None
    conn.transport.close()
    return replies
