"""Processes of a benchmark run: Redis, the server under test, and a seeding store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

from session_service.app import build_store
from session_service.config import Settings
from session_service.store.embedded import find_server_binary
from session_service.store.sessions import SessionStore

HOST = "127.0.0.1"
# Today's layout on the 2-core machine: the server under test alone on core 0,
# Redis and the load generator sharing core 1.
SERVER_CORES = "0"
CLIENT_CORES = "1"
REDIS_CORES = "1"


def parse_cores(spec: str) -> set[int]:
    """taskset's list syntax: "0", "0,2", "2-7", "0,4-7"."""
    cores: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def pin(cores: set[int]) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, cores)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def _pinned(cores: set[int]) -> object:
    if (os.cpu_count() or 1) < 2:
        return None
    return lambda: pin(cores)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Bench:
    """Owns every process of a run; `serve()` starts a server under test on its cores."""

    def __init__(
        self,
        *,
        redis_url: str | None,
        duration: float,
        connections: int,
        workers: int,
        quick: bool,
        only: list[str] | None,
        server_cores: str = SERVER_CORES,
        client_cores: str = CLIENT_CORES,
        redis_cores: str = REDIS_CORES,
    ) -> None:
        self.server_cores = parse_cores(server_cores)
        self.client_cores = parse_cores(client_cores)
        self.redis_cores = parse_cores(redis_cores)
        self.layout = (
            f"server on cores {server_cores}, Redis on {redis_cores}, load on {client_cores}"
        )
        self.redis_url_arg = redis_url
        self.duration = duration
        self.connections = connections
        self.workers = workers
        self.quick = quick
        self.only = only
        self.tmp = Path(tempfile.mkdtemp(prefix="fm-bench-"))
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.redis_url = ""
        self.redis_port = 0
        self.store: SessionStore | None = None
        self.ceiling_b_rps = 0.0
        self.seeded_users = False

    def wants(self, name: str) -> bool:
        return not self.only or any(part in name for part in self.only)

    async def __aenter__(self) -> Bench:
        if self.redis_url_arg:
            self.redis_url = self.redis_url_arg
        else:
            self.redis_port = _free_port()
            self.redis_proc = await asyncio.to_thread(self._start_redis)
            self.redis_url = f"redis://{HOST}:{self.redis_port}/0"
        parsed = urlparse(self.redis_url)
        self.redis_host = parsed.hostname or HOST
        self.redis_port = parsed.port or 6379
        settings = self.service_settings()
        self.store = build_store(settings, self.redis_url)
        await self.store.client.flushall()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.store is not None:
            await self.store.close()
        if self.redis_proc is not None:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)

    def _start_redis(self) -> subprocess.Popen[bytes]:
        """The same binary the embedded default runs, with the same settings, pinned."""
        args = [
            find_server_binary(), "--port", str(self.redis_port), "--bind", HOST,
            "--dir", str(self.tmp), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--maxmemory-policy", "noeviction",
            "--logfile", str(self.tmp / "redis.log"),
        ]  # fmt: skip
        proc = subprocess.Popen(args, preexec_fn=_pinned(self.redis_cores))  # type: ignore[arg-type]
        _wait_port(self.redis_port)
        return proc

    def service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "ENVIRONMENT": "production",
                "LOG_LEVEL": "INFO",
                "ACCESS_LOG": "true",
                "METRICS_ENABLED": "true",
                "MAX_SESSIONS_PER_USER": "50000",
                "CLEANUP_INTERVAL_SECONDS": "0",
                "BENCH_REDIS_URL": self.redis_url,
            }
        )
        return env

    def service_settings(self) -> Settings:
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            redis_url=self.redis_url,
            max_sessions_per_user=50000,
            cleanup_interval_seconds=0,
        )

    @contextlib.asynccontextmanager
    async def serve(self, target: str) -> AsyncIterator[int]:
        """Start `service` or an ASGI app path (`bench.ceilings:json_app`) on the server cores."""
        port = _free_port()
        if target == "service":
            cmd = [
                sys.executable,
                "-m",
                "session_service",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(self.workers),
            ]
        else:
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                target,
                "--host",
                HOST,
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
                "--workers",
                str(self.workers),
            ]
        proc = await asyncio.to_thread(self._spawn, cmd, port)
        try:
            yield port
        finally:
            await asyncio.to_thread(_stop, proc)

    def _spawn(self, cmd: list[str], port: int) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"server-{port}.log", "wb") as log:
            proc = subprocess.Popen(
                cmd,
                env=self.service_env(),
                stdout=log,
                stderr=log,
                preexec_fn=_pinned(self.server_cores),  # type: ignore[arg-type]
                cwd=Path(__file__).resolve().parent.parent,
            )
        _wait_port(port)
        return proc

    def log_files(self) -> Iterable[Path]:
        return self.tmp.glob("*.log")
