"""`make run` (the installed console script) with the platform's Redis settings:
the store it uses and the start line that says so (issue 12, item 1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from redis import Redis

from session_service.store.keys import Keys
from tests.ops.service import BIN, running_service, service_env
from tests.servers import RedisProcess, free_port, redis_server

USER = {"X-User-ID": "u-platform"}


def storage_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "storage: " in line]


def test_only_redis_host_and_port_store_the_sessions_in_that_server(
    tmp_path: Path, redis_process: RedisProcess
) -> None:
    env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_process.port)}
    with Redis.from_url(redis_process.url, decode_responses=True) as raw:
        raw.flushall()
        with running_service(tmp_path, "serve", **env) as service:
            created = httpx.post(
                f"{service.url}/api/v1/sessions", json={"title": "visible"}, headers=USER
            )
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
            ready = httpx.get(f"{service.url}/ready").json()
        stored = raw.hget(Keys("fms").session(USER["X-User-ID"], sid), "t")
    assert stored == "visible"
    [line] = storage_lines(service.stderr())
    assert f"redis://127.0.0.1:{redis_process.port}/0" in line
    assert "from REDIS_HOST/REDIS_PORT" in line
    assert ready["storage_mode"] == "standalone"
    assert not (tmp_path / "data").exists(), "no embedded store was started"


def test_redis_url_wins_over_redis_host_and_the_start_line_says_so(
    tmp_path: Path, redis_process: RedisProcess
) -> None:
    env = {
        "REDIS_URL": redis_process.url,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(free_port()),  # nothing listens there
    }
    with running_service(tmp_path, "serve", **env) as service:
        created = httpx.post(f"{service.url}/api/v1/sessions", json={}, headers=USER)
        assert created.status_code == 201, created.text
    [line] = storage_lines(service.stderr())
    assert "from REDIS_URL; REDIS_HOST, REDIS_PORT ignored" in line


def test_a_refused_password_stops_the_process_with_one_line_naming_it(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis", "--requirepass", "right") as server:
        env = service_env(
            REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port), REDIS_PASSWORD="wrong"
        )
        port = str(free_port())
        result = subprocess.run(
            [str(BIN), "serve", "--host", "127.0.0.1", "--port", port],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "REDIS_PASSWORD" in line and "wrong" not in line
    assert not (tmp_path / "data").exists(), "never a fallback to the embedded store"


def test_without_redis_settings_the_embedded_start_line_names_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with running_service(tmp_path, "serve", DATA_DIR=str(data_dir)) as service:
        pass
    [line] = storage_lines(service.stderr())
    assert " INFO " in line
    assert f"DATA_DIR={data_dir}" in line


def test_in_production_the_embedded_start_line_is_a_warning(tmp_path: Path) -> None:
    data_dir = tmp_path / "store"
    with running_service(
        tmp_path, "serve", DATA_DIR=str(data_dir), ENVIRONMENT="production"
    ) as service:
        pass
    entries = [json.loads(line) for line in service.stderr().splitlines() if line.startswith("{")]
    [entry] = [e for e in entries if e["msg"].startswith("storage: ")]
    assert entry["level"] == "WARNING"
    assert f"DATA_DIR={data_dir}" in entry["msg"]
    assert "stays in this container" in entry["msg"]
