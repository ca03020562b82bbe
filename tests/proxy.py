"""A real TCP proxy on loopback between the service and Redis that injects faults.

Each chunk the client sends is forwarded to the server; `choose(chunk)` may arm a
fault for that chunk's reply:

- `drop`:  the command reaches Redis, its reply is discarded and the client's
  connection is closed (a reply lost on the way back);
- `reset`: part of the reply is forwarded, then the client's connection is reset
  (RST) mid-stream;
- `stall`: the reply is held until the client gives up (its socket timeout) and
  closes the connection; it is never delivered;
- `http_502`, `http_503`, `http_504` (for an HTTP upstream): the server's reply is
  discarded and the client gets that answer from "the gateway" instead (503 with
  `Retry-After: 1`), then the connection is closed.

No fault depends on time: a stalled reply waits for the client, not for a clock.

`hold(chunk)` delays commands instead: a chunk for which it answers true is kept
from Redis until `release()`, so a test can act between two commands of one
client (`held` is set once such a chunk waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable

FAULTS = ("drop", "reset", "stall")
HTTP_FAULTS = ("http_502", "http_503", "http_504")

_GATEWAY_ANSWERS = {
    "http_502": b"502 Bad Gateway\r\nContent-Type: text/plain\r\n",
    "http_503": b"503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\n",
    "http_504": b"504 Gateway Timeout\r\nContent-Type: text/plain\r\n",
}


def gateway_answer(fault: str) -> bytes:
    """The whole HTTP/1.1 answer a gateway sends in place of the lost reply."""
    body = fault.encode()
    head = b"HTTP/1.1 " + _GATEWAY_ANSWERS[fault]
    return head + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def once(fault: str, marker: bytes) -> Callable[[bytes], str | None]:
    """Fault the first chunk containing `marker`, and nothing else."""
    done = False

    def choose(chunk: bytes) -> str | None:
        nonlocal done
        if done or marker not in chunk:
            return None
        done = True
        return fault

    return choose


def random_faults(
    seed: int, rate: float, only: bytes | None = None
) -> Callable[[bytes], str | None]:
    """A seeded chooser: each chunk (containing `only`, when given) faults with `rate`."""
    rng = random.Random(seed)

    def choose(chunk: bytes) -> str | None:
        if only is not None and only not in chunk:
            return None
        return rng.choice(FAULTS) if rng.random() < rate else None

    return choose


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.choose: Callable[[bytes], str | None] = lambda chunk: None
        self.hold: Callable[[bytes], bool] = lambda chunk: False
        self.held = asyncio.Event()
        self._released = asyncio.Event()
        self.injected: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def release(self) -> None:
        """Forward the held chunks, and every later one, without holding again."""
        self.hold = lambda chunk: False
        self._released.set()

    async def _wait_if_held(self, chunk: bytes) -> None:
        if self.hold(chunk):
            self.held.set()
            await self._released.wait()

    async def sever_all(self) -> None:
        """Close every connection the clients hold (as a restarted server would)."""
        writers = list(self._clients)
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._clients.add(cwriter)
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            cwriter.close()
            self._tasks.discard(task)
            self._clients.discard(cwriter)
            return
        armed: list[str] = []
        client_gone = asyncio.Event()

        async def upstream() -> None:
            try:
                while chunk := await creader.read(65536):
                    await self._wait_if_held(chunk)
                    fault = self.choose(chunk)
                    if fault is not None:
                        armed.append(fault)
                    swriter.write(chunk)
                    await swriter.drain()
            except OSError:
                pass
            finally:
                client_gone.set()

        async def downstream() -> None:
            try:
                while chunk := await sreader.read(65536):
                    if armed:
                        await self._inject(armed.pop(), chunk, cwriter, client_gone)
                        return
                    cwriter.write(chunk)
                    await cwriter.drain()
            except OSError:
                pass

        try:
            up = asyncio.create_task(upstream())
            down = asyncio.create_task(downstream())
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for part in (up, down):
                part.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            for writer in (cwriter, swriter):
                writer.close()
            self._tasks.discard(task)
            self._clients.discard(cwriter)

    async def _inject(
        self, fault: str, chunk: bytes, cwriter: asyncio.StreamWriter, client_gone: asyncio.Event
    ) -> None:
        self.injected[fault] += 1
        if fault == "reset":
            if len(chunk) > 1:
                cwriter.write(chunk[: len(chunk) // 2])
                with contextlib.suppress(OSError):
                    await cwriter.drain()
            sock = cwriter.get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            cwriter.transport.abort()
        elif fault == "stall":
            await client_gone.wait()
        elif fault in _GATEWAY_ANSWERS:
            cwriter.write(gateway_answer(fault))
            with contextlib.suppress(OSError):
                await cwriter.drain()
        # drop: nothing is forwarded; the caller closes both sides.
