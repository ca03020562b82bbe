"""Storage down (issue 2, item 7): 503 `storage_unavailable` with Retry-After, quickly,
never a hang or a 500; /ready says so, /health does not care."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, running_app, user
from tests.helpers import API
from tests.servers import RedisProcess, free_port

SID = "sess_00000000000000000000000000000000"
CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", API, {"title": "x"}),
    ("GET", API, None),
    ("POST", f"{API}/search", {}),
    ("POST", f"{API}/cleanup", None),
    ("GET", f"{API}/{SID}", None),
    ("PATCH", f"{API}/{SID}", {"title": "x"}),
    ("DELETE", f"{API}/{SID}", None),
    ("POST", f"{API}/{SID}/heartbeat", None),
    ("POST", f"{API}/{SID}/archive", None),
    ("POST", f"{API}/{SID}/messages", {"role": "user", "content": "x"}),
    ("GET", f"{API}/{SID}/messages", None),
    ("GET", f"{API}/{SID}/cases", None),
]


@contextlib.asynccontextmanager
async def app_on(url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings(url, **overrides)) as client:
        yield client


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def _timed(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    started = time.monotonic()
    # A generous guard so a hang fails the test instead of stalling the run.
    async with asyncio.timeout(30):
        response = await client.request(method, path, json=body, headers=user())
    print(f"{method} {path}: {response.status_code} in {time.monotonic() - started:.3f}s")
    return response


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "storage_unavailable"
    assert response.json()["detail"]
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(("method", "path", "body"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
async def test_every_storage_call_answers_503_when_the_port_is_closed(
    method: str, path: str, body: dict[str, Any] | None
) -> None:
    async with app_on(f"redis://127.0.0.1:{free_port()}/0") as client:
        _assert_unavailable(await _timed(client, method, path, body))


async def test_ready_is_503_and_health_is_200_when_storage_is_down() -> None:
    async with app_on(f"redis://127.0.0.1:{free_port()}/0") as client:
        ready = await client.get("/ready")
        health = await client.get("/health")
        info = await client.get("/")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert int(ready.headers["Retry-After"]) >= 1
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert info.status_code == 200


async def test_a_server_that_never_answers_gives_503_not_a_hang() -> None:
    with silent_server() as url:
        async with app_on(url) as client:
            _assert_unavailable(await _timed(client, "GET", API, None))
            ready = await client.get("/ready")
    assert ready.status_code == 503


async def test_identity_errors_still_come_first_when_storage_is_down() -> None:
    async with app_on(f"redis://127.0.0.1:{free_port()}/0") as client:
        response = await client.get(API)
    assert response.status_code == 401
    assert response.json()["code"] == "missing_user_id"


async def test_the_service_recovers_when_storage_comes_back(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis").start()
    try:
        async with app_on(server.url) as client:
            created = await client.post(API, json={"title": "kept"}, headers=user())
            assert created.status_code == 201
            sid = created.json()["session_id"]

            server.stop()
            _assert_unavailable(await _timed(client, "GET", f"{API}/{sid}", None))
            assert (await client.get("/ready")).status_code == 503

            server.start()
            again = await client.get(f"{API}/{sid}", headers=user())
            assert again.status_code == 200
            assert again.json()["title"] == "kept"
            assert (await client.get("/ready")).status_code == 200
    finally:
        server.stop()
