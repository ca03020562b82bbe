"""Writing the change feed: SSE framing, and the streaming response that holds a feed.

The response runs the feed in a task of its own and watches the connection for
the client leaving. Every write is bounded in time: a client that stops reading
fills its socket's buffers (the kernel's and the server's write buffer, 64 KiB),
the next write then waits, and a write still waiting after one heartbeat period
ends the feed. A slow reader never holds more than one page of events in memory
and never delays another watcher (each feed is its own task).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from session_service import errors
from session_service.domain.events import FeedEvent
from session_service.observability import metrics
from session_service.store import FeedHub, Watcher

logger = logging.getLogger("session_service.api")

#: The `retry:` hint (ms): how long an EventSource waits before it reconnects.
RETRY_MS = 1000
#: After a failed read (storage unavailable) a feed tries again this much later.
READ_RETRY_SECONDS = 0.5
KEEP_ALIVE = b": keep-alive\n\n"
SHUTTING_DOWN = b": this instance is shutting down; reconnect\nretry: %d\n\n" % RETRY_MS


def frame(event: FeedEvent) -> bytes:
    """One SSE event: `event:`, `id:` for messages, one `data:` line of JSON."""
    head = b"event: " + event.kind.encode() + b"\n"
    if event.id is not None:
        head += b"id: " + event.id.encode() + b"\n"
    return head + b"data: " + orjson.dumps(event.data) + b"\n\n"


@functools.cache
def _sent(kind: str) -> Any:
    return metrics.FEED_EVENTS.labels(kind)


def record_sent(events: Iterable[FeedEvent]) -> None:
    """Count events written, and their delivery latency from the commit in Redis."""
    now = time.time()
    for event in events:
        _sent(event.kind).inc()
        if event.committed_at is not None:
            metrics.FEED_DELIVERY.observe(max(now - event.committed_at, 0.0))


class _SlowReader(Exception):
    """A write waited a whole heartbeat period: the client stopped reading."""


class EventStream(Response):
    """`text/event-stream` of one watcher, from its opening events until it ends."""

    media_type = "text/event-stream"

    def __init__(
        self, feed: FeedHub, watcher: Watcher, opening: list[FeedEvent], heartbeat: float
    ) -> None:
        self.status_code = 200
        self.background = None
        self.feed = feed
        self.watcher = watcher
        self.opening = opening
        self.heartbeat = heartbeat
        # No Content-Length; no-transform and X-Accel-Buffering keep proxies from buffering.
        self.init_headers({"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.FEED_WATCHERS.inc()
        writer = asyncio.create_task(self._run(send))
        gone = asyncio.create_task(_client_gone(receive))
        try:
            await asyncio.wait((writer, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            writer.cancel()
            gone.cancel()
            await asyncio.gather(writer, gone, return_exceptions=True)
            metrics.FEED_WATCHERS.dec()
            await self.feed.release(self.watcher)

    async def _write(self, send: Send, body: bytes) -> None:
        try:
            async with asyncio.timeout(self.heartbeat):
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except TimeoutError:
            raise _SlowReader() from None

    async def _run(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            await self._write(send, b"retry: %d\n\n" % RETRY_MS + _frames(self.opening))
            record_sent(self.opening)
            reason = await self._follow(send)
        except _SlowReader:
            metrics.FEED_CLOSED.labels("slow_reader").inc()
            logger.info(
                "change feed of session %s ended: the client stopped reading",
                self.watcher.session_id,
                extra={"session_id": self.watcher.session_id},
            )
            return  # the connection is closed without waiting on its full buffer
        metrics.FEED_CLOSED.labels(reason).inc()
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _follow(self, send: Send) -> str:
        """Write events as they happen; answers why the feed ended."""
        watcher = self.watcher
        while True:
            if self.feed.closing:
                await self._write(send, SHUTTING_DOWN)
                return "shutdown"
            if watcher.gone:
                return "deleted"
            try:
                events = await watcher.next(self.heartbeat)
            except (RedisError, errors.StorageError):
                # Storage is unavailable: keep the feed, read again shortly (the
                # cursor has not moved, so nothing is skipped).
                await asyncio.sleep(READ_RETRY_SECONDS)
                watcher.wake()
                continue
            if self.feed.closing:
                continue
            if events is None:
                await self._write(send, KEEP_ALIVE)
            elif events:
                await self._write(send, _frames(events))
                record_sent(events)


def _frames(events: list[FeedEvent]) -> bytes:
    return b"".join(frame(event) for event in events)


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
