"""The embedded default (issue 2, item 3): with REDIS_URL unset the service owns a
real server under DATA_DIR, and sessions survive a restart of the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from session_service.config import Settings
from session_service.store.embedded import EmbeddedServer, EmbeddedServerError, server_answers
from tests.conftest import make_settings, running_app, user
from tests.helpers import API
from tests.servers import free_port, redis_server

SCRIPT = str(Path(sys.executable).parent / "fm-session-service")


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    """A data dir with a short path: the server's unix socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="fms-", dir="/tmp"))
    try:
        yield path / "data"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _has_aof(data_dir: Path) -> bool:
    return any(data_dir.rglob("*.aof*"))


async def test_a_session_survives_an_app_restart(short_data_dir: Path) -> None:
    settings = make_settings(None, data_dir=short_data_dir)  # type: ignore[arg-type]
    assert settings.embedded
    async with running_app(settings) as client:
        info = (await client.get("/")).json()
        assert info["storage_mode"] == "embedded"
        created = await client.post(API, json={"title": "kept"}, headers=user())
        assert created.status_code == 201
        sid = created.json()["session_id"]
        message = {"role": "user", "content": "still here?"}
        appended = await client.post(f"{API}/{sid}/messages", json=message, headers=user())
        assert appended.status_code == 201
    socket_path = short_data_dir / "valkey.sock"
    assert not server_answers(socket_path), "the embedded server outlived the app"
    assert _has_aof(short_data_dir)

    async with running_app(settings) as client:
        got = await client.get(f"{API}/{sid}", params={"include_messages": "true"}, headers=user())
        assert got.status_code == 200
        assert got.json()["title"] == "kept"
        assert [m["content"] for m in got.json()["messages"]] == ["still here?"]


def _socket_links() -> set[Path]:
    return set(Path("/tmp").glob("fmss-*"))


async def test_a_data_dir_of_200_characters_works(tmp_path: Path) -> None:
    """The unix socket address limit (~107 bytes) does not limit DATA_DIR."""
    data_dir = tmp_path.joinpath(*["d" * 60] * 4)
    assert len(str(data_dir)) >= 200
    links_before = _socket_links()
    settings = make_settings(None, data_dir=data_dir)  # type: ignore[arg-type]
    async with running_app(settings) as first, running_app(settings) as second:
        created = await first.post(API, json={"title": "long path"}, headers=user())
        assert created.status_code == 201, created.text
        sid = created.json()["session_id"]
        # The second app reuses the server the first one started in the same DATA_DIR.
        got = await second.get(f"{API}/{sid}", headers=user())
        assert got.status_code == 200 and got.json()["title"] == "long path"
    assert (data_dir / "valkey.log").is_file()
    assert not (data_dir / "valkey.sock").exists(), "the embedded server outlived the app"
    assert _socket_links() == links_before, "a socket link was left behind"
    async with running_app(settings) as client:
        assert (await client.get(f"{API}/{sid}", headers=user())).status_code == 200


async def test_the_embedded_server_never_evicts(short_data_dir: Path) -> None:
    settings = make_settings(None, data_dir=short_data_dir)  # type: ignore[arg-type]
    async with running_app(settings):
        redis = Redis(unix_socket_path=str(short_data_dir / "valkey.sock"), decode_responses=True)
        try:
            policy = await redis.config_get("maxmemory-policy")
            appendonly = await redis.config_get("appendonly")
        finally:
            await redis.aclose()
    assert policy == {"maxmemory-policy": "noeviction"}
    assert appendonly == {"appendonly": "yes"}


async def test_an_external_server_that_may_evict_is_warned_about(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("session_service")
    logger.addHandler(handler)
    try:
        with redis_server(tmp_path / "lru", "--maxmemory-policy", "allkeys-lru") as server:
            async with running_app(make_settings(server.url)):
                for _ in range(100):
                    if any("maxmemory-policy" in r.getMessage() for r in records):
                        break
                    await asyncio.sleep(0.02)
    finally:
        logger.removeHandler(handler)
    [warning] = [r for r in records if "maxmemory-policy" in r.getMessage()]
    assert "allkeys-lru" in warning.getMessage()
    assert warning.levelno == logging.WARNING


async def test_redis_url_may_be_a_unix_socket(short_data_dir: Path) -> None:
    sock = short_data_dir.parent / "r.sock"
    with redis_server(short_data_dir, "--unixsocket", str(sock), "--unixsocketperm", "700"):
        async with running_app(make_settings(f"unix://{sock}")) as client:
            info = (await client.get("/")).json()
            created = await client.post(API, json={"title": "over a socket"}, headers=user())
            ready = await client.get("/ready")
    assert info["storage_mode"] == "standalone"
    assert created.status_code == 201
    assert ready.status_code == 200


# ---- the real console script ---------------------------------------------------------------


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        {"DATA_DIR": str(data_dir), "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
         "CLEANUP_INTERVAL_SECONDS": "0"}
    )  # fmt: skip
    return env


def _start(
    data_dir: Path, port: int, log: Path, args: tuple[str, ...] = (), env_port: int | None = None
) -> subprocess.Popen[bytes]:
    env = _env(data_dir, port if env_port is None else env_port)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [SCRIPT, *args], cwd=data_dir.parent, env=env, stdout=out, stderr=out
        )
    # Generous: two workers and an embedded server starting on a loaded 2-core machine.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError(f"service did not become ready: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_the_console_script_keeps_sessions_across_a_restart(short_data_dir: Path) -> None:
    port = free_port()
    log = short_data_dir.parent / "service.log"
    base = f"http://127.0.0.1:{port}{API}"

    process = _start(short_data_dir, port, log)
    try:
        created = httpx.post(base, json={"title": "DB timeouts"}, headers=user(), timeout=10)
        assert created.status_code == 201
        sid = created.json()["session_id"]
    finally:
        code = _stop(process)
    assert code == 0, log.read_text()
    assert not server_answers(short_data_dir / "valkey.sock")
    output = log.read_text()
    assert "storage:" in output
    assert "embedded" in output

    process = _start(short_data_dir, port, log)
    try:
        got = httpx.get(f"{base}/{sid}", headers=user(), timeout=10)
        assert got.status_code == 200
        assert got.json()["title"] == "DB timeouts"
        listed = httpx.get(base, headers=user(), timeout=10).json()
        assert listed["total"] == 1
    finally:
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert _stop(process) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()


def test_serve_flags_override_the_environment_and_workers_share_one_embedded_server(
    short_data_dir: Path,
) -> None:
    port = free_port()
    log = short_data_dir.parent / "service.log"
    args = ("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
    process = _start(short_data_dir, port, log, args, env_port=free_port())
    try:
        base = f"http://127.0.0.1:{port}{API}"
        with httpx.Client(headers=user(), timeout=10) as http:
            created = http.post(base, json={"title": "shared"})
            assert created.status_code == 201
            sid = created.json()["session_id"]
            # New connections may land on either worker; every one sees the session.
            for _ in range(6):
                with httpx.Client(headers=user(), timeout=10) as fresh:
                    assert fresh.get(f"{base}/{sid}").json()["title"] == "shared"
    finally:
        code = _stop(process)
    assert code == 0, log.read_text()
    assert not server_answers(short_data_dir / "valkey.sock")


def test_uvicorn_serves_the_module_level_app(short_data_dir: Path, redis_url: str) -> None:
    port = free_port()
    log = short_data_dir.parent / "uvicorn.log"
    env = _env(short_data_dir, port)
    env["REDIS_URL"] = redis_url
    command = [sys.executable, "-m", "uvicorn", "session_service.main:app", "--port", str(port)]
    short_data_dir.mkdir(parents=True)
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=short_data_dir, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            time.sleep(0.05)
        assert ready is not None and ready.status_code == 200, log.read_text()
        created = httpx.post(f"http://127.0.0.1:{port}{API}", json={}, headers=user(), timeout=10)
        assert created.status_code == 201
    finally:
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert _stop(process) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()


def _servers_on(data_dir: Path) -> list[int]:
    """Pids of server processes whose command line names this DATA_DIR."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            line = b" ".join(cmdline)
            if b"server" in line and str(data_dir).encode() + b"/" in line:
                found.append(int(proc.name))
    return found


def test_a_stalled_owner_never_gets_a_second_server_on_its_data_dir(
    short_data_dir: Path,
) -> None:
    """A worker that finds DATA_DIR's server stalled (here: SIGSTOP) must not start another
    on the same AOF: it waits for the owner's server, then says so clearly."""
    owner = EmbeddedServer(short_data_dir)
    owner.start()
    assert owner.process is not None
    os.kill(owner.process.pid, signal.SIGSTOP)
    try:
        worker = EmbeddedServer(short_data_dir)
        with pytest.raises(EmbeddedServerError, match="another process owns"):
            worker.start(timeout=1.0)
        assert worker.process is None
        assert _servers_on(short_data_dir.resolve()) == [owner.process.pid]
    finally:
        os.kill(owner.process.pid, signal.SIGCONT)
        owner.stop()
    # With the owner gone, the next process takes DATA_DIR over (and the data with it).
    successor = EmbeddedServer(short_data_dir)
    successor.start()
    assert successor.process is not None
    successor.stop()
