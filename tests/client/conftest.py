"""The client against the real service: `fm-session-service serve` as a subprocess on a
loopback port, over the run's real Redis. Each test is its own user, so tests share one
service without seeing each other's sessions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fm_session_client import AsyncSessionClient, SessionClient
from tests.ops.service import ServiceProcess
from tests.servers import RedisProcess


@pytest.fixture(scope="session")
def service(
    redis_process: RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        tmp_path_factory.mktemp("client-service"),
        "serve",
        REDIS_URL=redis_process.url,
        # Load-proof like the app fixtures (tests/conftest.py CLIENT_REDIS_TIMEOUT).
        REDIS_TIMEOUT_SECONDS="10",
        LOG_LEVEL="WARNING",
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def user_id() -> str:
    return f"client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(service: ServiceProcess, user_id: str) -> Iterator[SessionClient]:
    with SessionClient(service.url, user_id=user_id) as c:
        yield c


@pytest.fixture
async def aclient(service: ServiceProcess, user_id: str) -> AsyncIterator[AsyncSessionClient]:
    async with AsyncSessionClient(service.url, user_id=user_id) as c:
        yield c


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
