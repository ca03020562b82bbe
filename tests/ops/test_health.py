"""`/health` (liveness, never touches storage) and `/ready` (storage answers,
with its mode and latency)."""

from __future__ import annotations

from pathlib import Path

import httpx

from session_service.config import Settings
from tests.conftest import make_settings, running_app
from tests.servers import free_port, redis_server


async def test_ready_reports_storage_mode_and_latency(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["storage_mode"] == "standalone"
    assert isinstance(body["latency_ms"], float) and body["latency_ms"] >= 0
    assert body["storage"]


async def test_ready_names_the_embedded_mode_when_the_service_owns_its_server(
    data_dir: Path,
) -> None:
    settings = Settings(_env_file=None, data_dir=data_dir, cleanup_interval_seconds=0)
    assert settings.embedded
    async with running_app(settings) as client:
        body = (await client.get("/ready")).json()
    assert body["status"] == "ready"
    assert body["storage_mode"] == "embedded"
    assert body["latency_ms"] >= 0


async def test_ready_is_503_with_retry_after_when_storage_is_down() -> None:
    async with running_app(make_settings(f"redis://127.0.0.1:{free_port()}/0")) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["latency_ms"] is None
    assert body["storage_mode"] == "standalone"


async def test_health_stays_200_while_storage_is_down(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        async with running_app(make_settings(server.url)) as client:
            assert (await client.get("/ready")).status_code == 200
            server.stop(hard=True)
            health = await client.get("/health")
            ready = await client.get("/ready")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert ready.status_code == 503
