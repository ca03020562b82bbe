"""`watch()` against the real service: concurrent appends arrive in order, once; a cut
stream (a real TCP proxy severing it) resumes with no gap and no duplicate; the
long-poll form yields the same events; the feed ends on `deleted`.

Every wait is a deadline (`asyncio.timeout`, a thread join), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import httpx

from fm_session_client import AsyncSessionClient, SessionClient, feed
from tests.ops.service import ServiceProcess
from tests.proxy import FaultProxy

DEADLINE = 90.0


class Recording(httpx.AsyncBaseTransport):
    """The real transport, keeping every request's feed headers (what a reconnect sent)."""

    def __init__(self, rewrite: Callable[[httpx.Request], None] | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[dict[str, str]] = []
        self.rewrite = rewrite

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.rewrite is not None:
            self.rewrite(request)
        names = ("accept", "last-event-id", "if-none-match", "prefer")
        self.sent.append({name: request.headers[name] for name in names if name in request.headers})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def collect(
    events: AsyncIterator[feed.FeedEvent], into: list[feed.FeedEvent], seen: asyncio.Event
) -> None:
    async for event in events:
        into.append(event)
        seen.set()


def message_ids(events: list[feed.FeedEvent]) -> list[str]:
    return [e.message.message_id for e in events if isinstance(e, feed.MessageEvent)]


async def until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait (under the caller's deadline) until `condition()` holds, woken per event."""
    while not condition():
        changed.clear()
        if condition():
            return
        await changed.wait()


async def test_watch_yields_concurrent_appends_in_order_once_and_ends_on_deleted(
    aclient: AsyncSessionClient,
) -> None:
    sid = (await aclient.create_session(title="watched")).session_id
    got: list[feed.FeedEvent] = []
    changed = asyncio.Event()
    async with asyncio.timeout(DEADLINE):
        watching = asyncio.create_task(collect(aclient.watch(sid), got, changed))
        await until(lambda: bool(got), changed)
        assert isinstance(got[0], feed.SessionEvent) and got[0].session.message_count == 0

        async def writer(tag: str) -> list[str]:
            return [
                (await aclient.append(sid, "user", f"{tag}{n}")).message.message_id
                for n in range(10)
            ]

        written = await asyncio.gather(writer("a"), writer("b"))
        await until(lambda: len(message_ids(got)) == 20, changed)
        await aclient.delete_session(sid)
        await watching  # the iterator ends by itself after `deleted`
    ids = message_ids(got)
    assert ids == sorted(set(written[0]) | set(written[1]))  # every append, in order, once
    contents = [e.message.content for e in got if isinstance(e, feed.MessageEvent)]
    assert [c for c in contents if c.startswith("a")] == [f"a{n}" for n in range(10)]
    assert isinstance(got[-1], feed.DeletedEvent) and got[-1].session_id == sid
    assert any(isinstance(e, feed.SessionEvent) and e.session.message_count == 20 for e in got)


async def test_watch_resumes_after_the_stream_is_cut_with_no_gap_and_no_duplicate(
    service: ServiceProcess, aclient: AsyncSessionClient, user_id: str
) -> None:
    sid = (await aclient.create_session(title="cut")).session_id
    proxy = await FaultProxy(service.port).start()
    transport = Recording()
    got: list[feed.FeedEvent] = []
    changed = asyncio.Event()
    try:
        async with (
            AsyncSessionClient(proxy.http_url, user_id=user_id, transport=transport) as via,
            asyncio.timeout(DEADLINE),
        ):
            watching = asyncio.create_task(collect(via.watch(sid, mode="stream"), got, changed))
            await until(lambda: bool(got), changed)  # watching from here on
            appended: list[str] = []
            for round_ in range(3):
                for n in range(5):
                    reply = await aclient.append(sid, "user", f"r{round_} m{n}")
                    appended.append(reply.message.message_id)
                await until(lambda: message_ids(got) == appended, changed)
                await proxy.sever_all()  # as a restarted gateway would
            await aclient.append(sid, "user", "after the last cut")
            await until(lambda: len(message_ids(got)) == 16, changed)
            await aclient.delete_session(sid)
            await watching
    finally:
        await proxy.stop()
    ids = message_ids(got)
    assert len(ids) == len(set(ids)) == 16 and ids == sorted(ids)
    assert ids[:15] == appended
    streams = [sent for sent in transport.sent if sent["accept"] == "text/event-stream"]
    # Each reconnect named the last message yielded before its cut.
    resumed_from = [sent.get("last-event-id") for sent in streams[1:]]
    assert {"msg_0000000005", "msg_0000000010", "msg_0000000015"} <= set(resumed_from)
    assert isinstance(got[-1], feed.DeletedEvent)


async def test_poll_mode_yields_the_same_events_as_the_stream(
    aclient: AsyncSessionClient,
) -> None:
    sid = (await aclient.create_session(title="both forms")).session_id
    streamed: list[feed.FeedEvent] = []
    polled: list[feed.FeedEvent] = []
    changed = asyncio.Event()
    async with asyncio.timeout(DEADLINE):
        tasks = [
            asyncio.create_task(collect(aclient.watch(sid, mode="stream"), streamed, changed)),
            asyncio.create_task(
                collect(aclient.watch(sid, mode="poll", poll_wait=5), polled, changed)
            ),
        ]
        await until(lambda: bool(streamed) and bool(polled), changed)
        appended = [
            (await aclient.append(sid, "user", f"m{n}")).message.message_id for n in range(8)
        ]
        summary = await aclient.create_summary(sid, "m0-m3", appended[3])
        await aclient.append(sid, "assistant", "last")
        await until(lambda: len(message_ids(polled)) == len(message_ids(streamed)) == 9, changed)
        await aclient.delete_session(sid)
        await asyncio.gather(*tasks)
    assert message_ids(polled) == message_ids(streamed) == [*appended, "msg_0000000009"]
    # One stream sees every summary; a summary written between two polls is not replayed
    # (docs/events.md: summaries are state, not history), so the poll may not have it.
    assert [e.summary.summary_id for e in streamed if isinstance(e, feed.SummaryEvent)] == [
        summary.summary_id
    ]
    assert isinstance(streamed[-1], feed.DeletedEvent) and isinstance(polled[-1], feed.DeletedEvent)
    assert streamed[-1] == polled[-1]
    last_states = [
        [e.session.message_count for e in got if isinstance(e, feed.SessionEvent)][-1]
        for got in (streamed, polled)
    ]
    assert last_states == [9, 9]


async def test_auto_falls_back_to_the_long_poll_when_the_answer_is_not_a_stream(
    service: ServiceProcess, aclient: AsyncSessionClient, user_id: str
) -> None:
    """A gateway that drops `Accept: text/event-stream` gets JSON back: watch() polls."""

    def strip_stream(request: httpx.Request) -> None:
        if request.headers.get("accept") == "text/event-stream":
            request.headers["accept"] = "application/json"

    sid = (await aclient.create_session(title="gateway")).session_id
    first = (await aclient.append(sid, "user", "before")).message.message_id
    transport = Recording(strip_stream)
    got: list[feed.FeedEvent] = []
    changed = asyncio.Event()
    async with (
        AsyncSessionClient(service.url, user_id=user_id, transport=transport) as via,
        asyncio.timeout(DEADLINE),
    ):
        watching = asyncio.create_task(collect(via.watch(sid, first, poll_wait=5), got, changed))
        later = [(await aclient.append(sid, "user", f"m{n}")).message.message_id for n in range(4)]
        await until(lambda: message_ids(got) == later, changed)
        await aclient.delete_session(sid)
        await watching
    assert isinstance(got[-1], feed.DeletedEvent)
    assert transport.sent[0]["last-event-id"] == first
    assert any(sent.get("prefer") == "wait=5" for sent in transport.sent[1:])


def test_sync_watch_is_the_same_generator(client: SessionClient) -> None:
    sid = client.create_session(title="sync").session_id
    got: list[feed.FeedEvent] = []
    watching = threading.Event()
    written: list[str] = []

    def writer() -> None:
        assert watching.wait(DEADLINE)
        written.extend(client.append(sid, "user", f"m{n}").message.message_id for n in range(3))
        # A message the feed has not read yet when its session is deleted is gone with it
        # (docs/client.md, "What is not replayed"): delete once the watcher holds all three.
        deadline = time.monotonic() + DEADLINE
        while message_ids(got) != written and time.monotonic() < deadline:
            time.sleep(0.01)
        client.delete_session(sid)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for event in client.watch(sid, idle_timeout=DEADLINE):
            got.append(event)
            watching.set()  # the first event (the session state) says the feed is open
    finally:
        watching.set()
        thread.join(DEADLINE)
    assert message_ids(got) == written and len(written) == 3
    assert isinstance(got[-1], feed.DeletedEvent)
