"""A real Prometheus (Debian's `prometheus` binary) on a loopback port, with a
generated configuration and a temporary data directory, for the live tests."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.ops.promql import RULE_FILES
from tests.servers import free_port

T = TypeVar("T")
JOB = "fm-session-service"


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `probe` until it returns something, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def rules_every_evaluation(source: Path, target: Path) -> Path:
    """The rule file as shipped, its groups evaluated at the global interval (1 s here)
    instead of their own 30 s or 1 m, so a short test sees the recorded series."""
    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        group.pop("interval", None)
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


class PrometheusProcess:
    def __init__(self, workdir: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed: run .ci/prometheus.sh (`make test` does)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        rule_files = [str(rules_every_evaluation(p, workdir / p.name)) for p in RULE_FILES]
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": rule_files,
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.args = [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.log = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30.0) -> PrometheusProcess:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=log, cwd=self.workdir)

        def ready() -> bool | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                return self.http.get("/-/ready").status_code == 200 or None
            return None

        eventually(ready, timeout, "prometheus answers /-/ready")
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        self.http.close()
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _api(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self._api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The value of a single-series query, None when it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self._api("query_range", query=expr, start=start, end=end, step="1s")
        assert data["resultType"] == "matrix", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts


def finite_points(series: dict[str, Any]) -> list[tuple[float, float]]:
    points = [(float(t), float(v)) for t, v in series["values"]]
    return [(t, v) for t, v in points if math.isfinite(v)]


@contextlib.contextmanager
def running_prometheus(workdir: Path, target: str) -> Iterator[PrometheusProcess]:
    prometheus = PrometheusProcess(workdir, target).start()
    try:
        yield prometheus
    finally:
        prometheus.stop()
