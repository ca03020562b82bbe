"""Two real service processes against one Redis keep every guarantee.

The service is stateless: whichever instance the gateway picks, appends are
neither lost nor duplicated, one client_id has one session, totals are exact.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import user
from tests.paging import all_messages
from tests.servers import free_port

pytestmark = pytest.mark.slow

WRITERS = 16
MESSAGES_EACH = 10


def _serve(redis_url: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "CLEANUP_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "ACCESS_LOG": "false",
    }
    binary = Path(sys.executable).with_name("fm-session-service")
    with (workdir / f"service-{port}.log").open("wb") as log:
        return subprocess.Popen(
            [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=workdir,  # no stray .env is read
            stdout=subprocess.DEVNULL,
            stderr=log,  # the child keeps its own copy of the descriptor
        )


def _wait_healthy(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the service on {base_url} exited"
        try:
            if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the service on {base_url} never became ready")


@pytest.fixture
def instances(redis: Redis, redis_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Base URLs of two service processes sharing the test Redis (already flushed)."""
    ports = [free_port(), free_port()]
    processes = [_serve(redis_url, port, tmp_path) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for process, url in zip(processes, urls, strict=True):
            _wait_healthy(process, url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def clients(instances: list[str]) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=instances[0], timeout=15) as a,
        httpx.AsyncClient(base_url=instances[1], timeout=15) as b,
    ):
        yield [a, b]


async def test_concurrent_appends_through_two_instances_are_exact(
    clients: list[httpx.AsyncClient],
) -> None:
    created = await clients[0].post("/api/v1/sessions", json={}, headers=user())
    sid = created.json()["session_id"]

    async def writer(w: int) -> list[str]:
        ids = []
        for m in range(MESSAGES_EACH):
            response = await clients[(w + m) % 2].post(
                f"/api/v1/sessions/{sid}/messages",
                json={"role": "user", "content": f"w{w}-m{m}"},
                headers=user(),
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["message"]["message_id"])
        return ids

    ids = [i for batch in await asyncio.gather(*map(writer, range(WRITERS))) for i in batch]

    total = WRITERS * MESSAGES_EACH
    assert sorted(ids) == [f"msg_{n:010d}" for n in range(1, total + 1)]
    for client in clients:
        stats = (await client.get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
        assert stats["message_count"] == total
        contents = [m["content"] for m in (await all_messages(client, sid))[1]]
        assert len(contents) == len(set(contents)) == total


async def test_concurrent_resumes_through_two_instances_yield_one_session(
    clients: list[httpx.AsyncClient],
) -> None:
    responses = await asyncio.gather(
        *(
            clients[n % 2].post("/api/v1/sessions", json={"client_id": "ext-1"}, headers=user())
            for n in range(16)
        )
    )

    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len({r.json()["session_id"] for r in responses}) == 1
    for client in clients:
        listed = (await client.get("/api/v1/sessions", headers=user())).json()
        assert listed["total"] == 1


async def test_a_retry_on_the_other_instance_is_not_a_duplicate(
    clients: list[httpx.AsyncClient],
) -> None:
    sid = (await clients[0].post("/api/v1/sessions", json={}, headers=user())).json()["session_id"]
    headers = user(**{"Idempotency-Key": "retry-1"})
    body = {"role": "user", "content": "once"}

    first, second = await asyncio.gather(
        *(
            clients[n].post(f"/api/v1/sessions/{sid}/messages", json=body, headers=headers)
            for n in (0, 1)
        )
    )

    assert {first.status_code, second.status_code} <= {200, 201}
    assert first.json()["message"]["message_id"] == second.json()["message"]["message_id"]
    stats = (await clients[1].get(f"/api/v1/sessions/{sid}/stats", headers=user())).json()
    assert stats["message_count"] == 1
