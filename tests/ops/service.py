"""The real service as a subprocess (`fm-session-service serve`), for what only a
real process shows: signals, workers, log output on stderr."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers import free_port

BIN = Path(sys.executable).parent / "fm-session-service"


def service_env(**settings: str) -> dict[str, str]:
    """The parent environment without any of the service's settings, plus `settings`."""
    from session_service.config import Settings

    names = {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update({"CLEANUP_INTERVAL_SECONDS": "0", **settings})
    return env


class ServiceProcess:
    def __init__(self, workdir: Path, *args: str, **settings: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.stderr_path = workdir / f"service-{self.port}.stderr"
        workdir.mkdir(parents=True, exist_ok=True)
        self.args = [str(BIN), *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.env = service_env(**settings)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        # cwd is the workdir so no .env of the repository is read.
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                self.args, cwd=self.workdir, env=self.env, stdout=stderr, stderr=stderr
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited {self.process.returncode}:\n{self.stderr()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"service did not answer /health within {timeout}s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_service(workdir: Path, *args: str, **settings: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(workdir, *args, **settings).start()
    try:
        yield service
    finally:
        service.stop()


async def cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    """Run the console script: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        str(BIN),
        *args,
        cwd=tmp_path,
        env=service_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
