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
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

from bench.loadgen import Result
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


_TICK = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc.

    Unlike throughput, this barely moves when other work shares the machine, so it
    is the figure to compare across runs on a busy host.
    """
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(process_tree_cpu(int(child)) for child in f.read().split())
    except (OSError, ValueError):
        pass
    return total


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
        self.ceiling_b_us: float | None = None  # its server CPU per request
        self.seeded_users = False
        self.servers: list[int] = []

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
            # The bench's own store seeds 50,000 sessions 64 at a time on a busy machine:
            # a slow reply must not abort the run (the service keeps its own default).
            redis_timeout_seconds=30,
        )

    @contextlib.asynccontextmanager
    async def serve(self, target: str, server: str = "uvicorn") -> AsyncIterator[int]:
        """Start `service` or an ASGI app path (`bench.ceilings:json_app`) on the server cores.

        `server` is the ASGI server: uvicorn (uvloop + httptools, what the service's
        `serve` runs) or granian (compared side by side in the `servers` scenario).
        """
        port = _free_port()
        common = ["--host", HOST, "--port", str(port), "--workers", str(self.workers)]
        if server == "granian":
            app = "session_service.main:app" if target == "service" else target
            cmd = [
                sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop",
                "--http", "1", "--no-ws", "--log-level", "warning", "--no-access-log",
                *common, app,
            ]  # fmt: skip
        elif target == "service":
            cmd = [sys.executable, "-m", "session_service", "serve", *common]
        else:
            cmd = [
                sys.executable, "-m", "uvicorn", target, "--loop", "uvloop", "--http",
                "httptools", "--no-access-log", "--log-level", "warning", *common,
            ]  # fmt: skip
        proc = await asyncio.to_thread(self._spawn, cmd, port)
        self.servers.append(proc.pid)
        try:
            yield port
        finally:
            self.servers.remove(proc.pid)
            await asyncio.to_thread(_stop, proc)

    async def with_cpu(self, run: Awaitable[Result]) -> Result:
        """Await a load run and set its server CPU per request (warm-up requests included)."""
        before = self.server_cpu()
        result = await run
        sent = result.requests + result.warm_requests
        if self.servers and sent:
            result.server_us = (self.server_cpu() - before) * 1e6 / sent
        return result

    def server_cpu(self) -> float:
        """CPU seconds used so far by the server under test (the last one started)."""
        return process_tree_cpu(self.servers[-1]) if self.servers else 0.0

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
