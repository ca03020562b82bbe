"""Graceful shutdown of the real process: SIGTERM stops accepting, lets in-flight
requests finish, closes storage, stops an owned embedded server and exits 0."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from session_service.store.codec import message_from_entry
from session_service.store.keys import Keys
from tests.ops.service import ServiceProcess

GRACE_SECONDS = 10


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


def _refuses_connections(port: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_lets_an_in_flight_append_complete_then_refuses_connections_and_exits_zero(
    tmp_path: Path, redis_url: str, sync_redis: Redis
) -> None:
    service = ServiceProcess(
        tmp_path, "serve", REDIS_URL=redis_url, SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS)
    ).start()
    try:
        created = httpx.post(
            f"{service.url}/api/v1/sessions", json={"title": "t"}, headers={"X-User-ID": "u1"}
        )
        session_id = created.json()["session_id"]
        body = json.dumps({"role": "user", "content": "sent after SIGTERM"}).encode()
        head = (
            f"POST /api/v1/sessions/{session_id}/messages HTTP/1.1\r\nHost: test\r\n"
            f"X-User-ID: u1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", service.port), timeout=GRACE_SECONDS) as sock:
            sock.sendall(head)
            # "100 Continue" comes once the app asks for the body: the request is in flight.
            assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
            service.terminate()
            assert _refuses_connections(service.port), "still accepting after SIGTERM"
            sock.sendall(body)
            status, answer = _read_response(sock)
        assert status == 201, answer
        assert answer["total_messages"] == 1
        assert service.wait(timeout=GRACE_SECONDS + 5) == 0, service.stderr()
    finally:
        service.stop()
    stored: list[tuple[str, dict[str, str]]] = sync_redis.xrange(
        Keys("fms").messages("u1", session_id)
    )  # type: ignore[assignment]
    assert [message_from_entry(i, f)["content"] for i, f in stored] == ["sent after SIGTERM"]


def test_sigterm_stops_the_embedded_server_the_service_owns(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    service = ServiceProcess(tmp_path, "serve", DATA_DIR=str(data_dir)).start()
    try:
        ready = httpx.get(f"{service.url}/ready").json()
        assert ready["storage_mode"] == "embedded"
        pid = int((data_dir / "valkey.pid").read_text())
        assert _process_exists(pid)
        service.terminate()
        assert service.wait(timeout=GRACE_SECONDS + 5) == 0, service.stderr()
    finally:
        service.stop()
    assert not _process_exists(pid), "the embedded server outlived the service"
    assert not (data_dir / "valkey.sock").exists()


def test_sigterm_with_several_workers_exits_zero_and_cleans_up_what_the_parent_owns(
    tmp_path: Path,
) -> None:
    data_dir, tmp = tmp_path / "data", tmp_path / "tmp"
    tmp.mkdir()
    service = ServiceProcess(
        tmp_path, "serve", "--workers", "2", DATA_DIR=str(data_dir), TMPDIR=str(tmp)
    ).start()
    try:
        created = httpx.post(f"{service.url}/api/v1/sessions", json={}, headers={"X-User-ID": "u1"})
        assert created.status_code == 201
        pid = int((data_dir / "valkey.pid").read_text())
        [metrics_dir] = tmp.glob("fm-session-metrics-*")
        service.terminate()
        assert service.wait(timeout=GRACE_SECONDS + 5) == 0, service.stderr()
    finally:
        service.stop()
    assert not _process_exists(pid), "the embedded server outlived the service"
    assert not metrics_dir.exists(), "the multiprocess metrics directory was left behind"
