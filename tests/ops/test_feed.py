"""The change feed over real sockets: uvicorn on loopback ports, real processes for
signals, and a buffering proxy in front for the header-only form."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from session_service.observability import metrics
from tests.feed import BufferingProxy, Served, Watch, serve, until
from tests.ops.service import ServiceProcess


@pytest.fixture
def clean(redis_url: str) -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def server(clean: sync_redis.Redis, redis_url: str) -> Iterator[Served]:
    with serve(redis_url) as served:
        yield served


_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def api(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"X-User-ID": "u1"}, timeout=60)
    _clients.append(client)
    return client


def new_session(client: httpx.Client) -> str:
    response = client.post("/api/v1/sessions", json={})
    assert response.status_code == 201, response.text
    sid: str = response.json()["session_id"]
    return sid


def append(client: httpx.Client, sid: str, content: str) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/sessions/{sid}/messages", json={"role": "user", "content": content}
    )
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()["message"]
    return message


def watchers(served: Served) -> int:
    return len(served.app.state.feed)


def test_every_event_kind_streams_as_it_happens(server: Served) -> None:
    client = api(server.url)
    sid = new_session(client)
    watch = Watch(server.url, sid)
    try:
        assert watch.next().kind == "retry"
        opening = watch.next()
        assert opening.kind == "session"
        got = client.get(f"/api/v1/sessions/{sid}")
        assert opening.data == {"etag": got.headers["etag"], "session": got.json()}
        assert watch.status == 200

        stored = [append(client, sid, f"m{i}") for i in range(3)]
        messages = watch.take({"message"}, 3)
        assert [e.id for e in messages] == [m["message_id"] for m in stored]
        assert [e.data for e in messages] == stored

        assert client.patch(f"/api/v1/sessions/{sid}", json={"title": "new"}).status_code == 200

        def titled() -> bool:
            event = watch.next()
            assert event is not None
            return event.kind == "session" and event.data["session"]["title"] == "new"

        until(titled, what="a session event with the new title")

        summary = client.post(
            f"/api/v1/sessions/{sid}/summaries",
            json={"content": "so far", "covers_through": stored[1]["message_id"]},
        )
        assert summary.status_code == 201, summary.text
        (event,) = watch.take({"summary"}, 1)
        assert event.data == summary.json()

        linked = client.post(f"/api/v1/sessions/{sid}/cases", json={"case_id": "case-1"})
        assert linked.status_code in (200, 201), linked.text
        assert watch.take({"session"}, 1)[0].data["session"]["session_id"] == sid

        rewind = client.post(
            f"/api/v1/sessions/{sid}/rewind", json={"to_message_id": stored[0]["message_id"]}
        )
        assert rewind.status_code == 200, rewind.text
        (rewound,) = watch.take({"rewound"}, 1)
        assert rewound.data == {"session_id": sid, "last_message_id": stored[0]["message_id"]}

        after = append(client, sid, "after the rewind")
        assert watch.take({"message"}, 1)[0].data == after

        batch = client.post(
            f"/api/v1/sessions/{sid}/messages/batch",
            json={
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ]
            },
        )
        assert batch.status_code == 201, batch.text
        got = watch.take({"message"}, 2)
        assert [e.data for e in got] == batch.json()["messages"]

        assert client.delete(f"/api/v1/sessions/{sid}").status_code == 204
        assert watch.take({"deleted"}, 1)[0].data == {"session_id": sid}
        assert watch.next() is None  # the stream ended
        until(lambda: watchers(server) == 0, what="the watcher released")
    finally:
        watch.close()


def test_a_stream_cut_after_500_of_1000_resumes_with_no_gap_and_no_duplicate(
    server: Served,
) -> None:
    client = api(server.url)
    sid = new_session(client)
    stored: list[str] = []

    def write() -> None:
        with api(server.url) as writer:
            for i in range(1000):
                stored.append(append(writer, sid, f"message {i}")["message_id"])

    writer = threading.Thread(target=write)
    first = Watch(server.url, sid, last_event_id="msg_0000000000")
    writer.start()
    try:
        got = [e.id for e in first.take({"message"}, 500)]
    finally:
        first.close()  # cut mid-stream, while the writer goes on
    second = Watch(server.url, sid, last_event_id=got[-1])
    try:
        got += [e.id for e in second.take({"message"}, 500)]
    finally:
        second.close()
    writer.join(120)
    assert len(stored) == 1000
    assert got == stored  # every message once, in order


def test_a_change_through_one_instance_reaches_watchers_on_another(
    clean: sync_redis.Redis, redis_url: str
) -> None:
    with serve(redis_url) as one, serve(redis_url) as two:
        sid = new_session(api(one.url))
        watch = Watch(two.url, sid)
        try:
            assert watch.take({"session"}, 1)
            message = append(api(one.url), sid, "through the other instance")
            assert watch.take({"message"}, 1)[0].data == message
        finally:
            watch.close()


def test_keep_alive_comments_and_a_retry_hint(clean: sync_redis.Redis, redis_url: str) -> None:
    with serve(redis_url, events_heartbeat_seconds=0.2) as served:
        sid = new_session(api(served.url))
        watch = Watch(served.url, sid)
        try:
            assert watch.next().data == 1000  # retry: first
            assert watch.next().kind == "session"
            comment = watch.next(skip=())
            assert comment is not None
            assert (comment.kind, comment.data) == ("comment", "keep-alive")
        finally:
            watch.close()


def test_another_users_session_is_404_before_any_stream(server: Served) -> None:
    sid = new_session(api(server.url))
    response = httpx.get(
        f"{server.url}/api/v1/sessions/{sid}/events",
        headers={"Accept": "text/event-stream", "X-User-ID": "intruder"},
        timeout=60,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "session_not_found"
    assert watchers(server) == 0


def test_a_client_that_stops_reading_is_disconnected_and_slows_no_one(
    clean: sync_redis.Redis, redis_url: str
) -> None:
    with serve(redis_url, events_heartbeat_seconds=1) as served:
        client = api(served.url)
        sid = new_session(client)
        closed = metrics.FEED_CLOSED.labels("slow_reader")
        before = closed._value.get()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", int(served.url.rpartition(":")[2])))
        stalled.sendall(
            f"GET /api/v1/sessions/{sid}/events HTTP/1.1\r\nHost: x\r\n"
            "Accept: text/event-stream\r\nX-User-ID: u1\r\n\r\n".encode()
        )
        reader = Watch(served.url, sid)
        try:
            until(lambda: watchers(served) == 2, what="both watchers")
            sent: list[str] = []
            big = "x" * 60000

            def dropped() -> bool:
                # Never read: its buffers fill, and its feed ends at the next heartbeat.
                if closed._value.get() > before:
                    return True
                sent.append(append(client, sid, big)["message_id"])
                return False

            until(dropped, within=240, what="the stalled client dropped")
            assert watchers(served) == 1
            # The reader got every message while the other stalled, and still does.
            sent.append(append(client, sid, "after")["message_id"])
            got = [e.id for e in reader.take({"message"}, len(sent), within=240)]
            assert got == sent
        finally:
            reader.close()
            stalled.close()


def test_shutdown_ends_every_stream_with_a_retry_hint(
    clean: sync_redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    service = ServiceProcess(tmp_path, "serve", REDIS_URL=redis_url).start(timeout=120)
    watch: Watch | None = None
    try:
        sid = new_session(api(service.url))
        watch = Watch(service.url, sid)
        assert watch.take({"session"}, 1)
        until(lambda: "fm_session_feed_watchers 1.0" in httpx.get(f"{service.url}/metrics").text)
        service.terminate()
        tail = []
        while (event := watch.next(skip=())) is not None:
            tail.append(event)
        assert [e.kind for e in tail] == ["comment", "retry"]
        assert tail[1].data == 1000
        assert service.wait(60) == 0
    finally:
        if watch is not None:
            watch.close()
        service.stop()


def test_the_header_only_form_through_a_buffering_proxy_misses_nothing(server: Served) -> None:
    sid = new_session(api(server.url))
    stored: list[str] = []
    with BufferingProxy(int(server.url.rpartition(":")[2])) as proxy:
        gateway = httpx.Client(base_url=proxy.url, timeout=60)
        _clients.append(gateway)
        headers = {"Accept": "application/json", "X-User-ID": "u1", "Connection": "close"}
        url = f"/api/v1/sessions/{sid}/events?ignored=1"
        first = gateway.get(url, headers=headers)
        assert first.status_code == 200
        cursor, etag = first.json()["last_event_id"], first.headers["etag"]

        def write() -> None:
            with api(server.url) as writer:
                for i in range(200):
                    stored.append(append(writer, sid, f"m{i}")["message_id"])

        writer = threading.Thread(target=write)
        writer.start()
        got: list[str] = []
        while len(got) < 200:
            answer = gateway.get(
                url,
                headers={**headers, "Last-Event-ID": cursor, "If-None-Match": etag,
                         "Prefer": "wait=10"},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            body = answer.json()
            got += [e["id"] for e in body["events"] if e["event"] == "message"]
            cursor, etag = body["last_event_id"], answer.headers["etag"]
        writer.join(120)
        assert got == stored
        assert all(line.endswith("/events") for line in proxy.requests)
