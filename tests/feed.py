"""Helpers for the change feed's tests: a served app, an SSE reader, a buffering proxy.

Streams need a real socket (httpx's ASGI transport does not stream), so the app
runs under uvicorn on a loopback port, in a thread of this process or as a real
process (tests/ops/service.py). `BufferingProxy` stands for FaultMaven's gateway:
it reads every upstream response whole before answering and drops query strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from session_service.app import create_app
from tests.conftest import make_settings
from tests.helpers import create_session, user
from tests.servers import free_port, uvicorn_thread

JSON = {"Accept": "application/json"}


async def wait_subscribed(client: httpx.AsyncClient) -> None:
    """Until the app's change feed holds its subscription (or a minute has passed)."""
    feed = client.app.state.feed  # type: ignore[attr-defined]
    await asyncio.wait_for(feed.subscribed.wait(), 60)


async def wakes_across_instances(one: httpx.AsyncClient, two: httpx.AsyncClient) -> None:
    """An append through `one` ends a long poll held by `two` with that message: only
    the Redis notification `two`'s subscription hears can end it early."""
    sid = (await create_session(one))["session_id"]
    # Subscribed first: the poll can only end early if a notification arrives
    # (a subscription coming up later would wake it by itself).
    await wait_subscribed(two)
    opened = await two.get(f"/api/v1/sessions/{sid}/events", headers=user(**JSON))
    cursor = opened.json()["last_event_id"]
    poll = asyncio.create_task(
        two.get(
            f"/api/v1/sessions/{sid}/events",
            headers=user(**JSON, **{"Last-Event-ID": cursor, "Prefer": "wait=25"}),
        )
    )
    feed = two.app.state.feed  # type: ignore[attr-defined]
    async with asyncio.timeout(60):
        while not len(feed):  # noqa: ASYNC110 - the hub offers no event for this
            await asyncio.sleep(0.01)
    appended = await one.post(
        f"/api/v1/sessions/{sid}/messages", json={"role": "user", "content": "hi"},
        headers=user(),
    )  # fmt: skip
    assert appended.status_code == 201, appended.text
    answer = (await poll).json()
    messages = [e for e in answer["events"] if e["event"] == "message"]
    assert [m["data"] for m in messages] == [appended.json()["message"]]


@dataclass
class Served:
    app: FastAPI
    url: str


@contextlib.contextmanager
def serve(redis_url: str, **overrides: Any) -> Iterator[Served]:
    """The app under uvicorn in a background thread, on a free loopback port."""
    overrides.setdefault("redis_timeout_seconds", 10.0)
    app = create_app(make_settings(redis_url, **overrides))
    with uvicorn_thread(app) as port:
        yield Served(app, f"http://127.0.0.1:{port}")


def until(condition: Callable[[], Any], within: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition` until it answers something truthy (a deadline, never a guess)."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {within} s"
        time.sleep(0.02)


@dataclass(frozen=True)
class Event:
    kind: str  # an SSE event name, or "retry" / "comment" for those lines
    id: str | None
    data: Any


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """SSE events (and `retry:` hints and comments) from a stream's lines."""
    kind: str | None = None
    event_id: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if kind is not None or data:
                yield Event(kind or "message", event_id, json.loads("\n".join(data)))
            kind, event_id, data = None, None, []
        elif line.startswith(":"):
            yield Event("comment", None, line[1:].strip())
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
            elif field == "retry":
                yield Event("retry", None, int(value))


class Watch:
    """An SSE stream read by a thread into a queue, until it ends or is closed."""

    def __init__(
        self, url: str, sid: str, user_id: str = "u1", last_event_id: str | None = None
    ) -> None:
        headers = {"Accept": "text/event-stream", "X-User-ID": user_id}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.status: int | None = None
        self.opened = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(120, connect=30))
        self._url = f"{url}/api/v1/sessions/{sid}/events"
        self._headers = headers
        self._closing = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, headers=self._headers) as response:
                self.status = response.status_code
                self.opened.set()
                for event in parse(response.iter_lines()):
                    self.events.put(event)
        except httpx.HTTPError:
            if not self._closing:
                raise
        finally:
            self.opened.set()
            self.events.put(None)

    def next(self, within: float = 60.0, skip: tuple[str, ...] = ("comment",)) -> Event | None:
        """The next event not of a kind in `skip`; None once the stream ended."""
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no event in time"
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                raise AssertionError("no event in time") from None
            if event is None or event.kind not in skip:
                return event

    def take(self, kinds: set[str], count: int, within: float = 120.0) -> list[Event]:
        """The next `count` events of the given kinds (others are skipped)."""
        out: list[Event] = []
        deadline = time.monotonic() + within
        while len(out) < count:
            event = self.next(max(deadline - time.monotonic(), 0.001))
            assert event is not None, f"stream ended after {len(out)} of {count}"
            if event.kind in kinds:
                out.append(event)
        return out

    def close(self) -> None:
        self._closing = True
        self._client.close()
        self._thread.join(30)


class BufferingProxy:
    """A gateway that reads each upstream response whole before it answers, and drops
    the query string of every request. One request per connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BufferingProxy:
        self._thread.start()
        assert self._ready.wait(30), "proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            length = 0
            kept = []
            for line in lines[1:]:
                if not line:
                    continue
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                if name.lower() in ("connection", "keep-alive"):
                    continue
                kept.append(line)
            body = await reader.readexactly(length) if length else b""
            path = target.partition("?")[0]  # the gateway drops query strings
            self.requests.append(f"{method} {path}")
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            request = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
            up_writer.write(request.encode("latin-1") + b"\r\n\r\n" + body)
            await up_writer.drain()
            # Whole, then answered: nothing reaches the client before the upstream is done.
            response = await up_reader.read()
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if up_writer is not None:
                up_writer.close()
            writer.close()
