"""The dashboard and the storage alert against the real thing: a real Prometheus
scrapes a real service process (every second) through mixed traffic with errors and
a Redis outage; then every panel's query, as committed in deploy/grafana/, is
evaluated through Prometheus' HTTP API and must return data.

With FM_DASHBOARD_PNG=docs/dashboard.png, the panels are drawn from the same answers
(deploy/grafana/render.py) into the docs' screenshot, over longer phases.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.prometheus import (
    JOB,
    PrometheusProcess,
    eventually,
    finite_points,
    running_prometheus,
)
from tests.ops.promql import alerts, dashboard, dashboard_panels, load_renderer
from tests.ops.service import ServiceProcess, running_service
from tests.servers import RedisProcess

PNG = os.environ.get("FM_DASHBOARD_PNG")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300 if PNG else 180),
]

# Grafana's variables, as a viewer of this job would have them: $__rate_interval is at
# least four scrape intervals.
VARIABLES = {"$job": JOB, "$__rate_interval": "5s"}
# Each phase lasts at least this long (healthy, outage, recovered) so that every rate
# window has samples of it; a longer run for the docs' screenshot.
PHASES = (40.0, 25.0, 20.0) if PNG else (8.0, 6.0, 5.0)
ids = itertools.count()


def user(name: str = "ops-user", **extra: str) -> dict[str, str]:
    return {"X-User-ID": name, **extra}


def mixed_traffic(http: httpx.Client) -> dict[int, int]:
    """One round of what clients do, with the client errors they make. Status counts."""
    statuses: dict[int, int] = {}

    def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = http.request(method, path, **kwargs)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        return response

    n = next(ids)
    created = call("POST", "/api/v1/sessions", json={"client_id": f"ext-{n}"}, headers=user())
    call("POST", "/api/v1/sessions", json={"client_id": f"ext-{n}"}, headers=user())  # resumed
    if created.status_code != 201:
        return statuses  # storage is down: every call answers 503
    sid = created.json()["session_id"]
    messages = f"/api/v1/sessions/{sid}/messages"
    for role in ("user", "assistant"):
        call("POST", messages, json={"role": role, "content": f"{role} {n}"}, headers=user())
    retry = user(**{"Idempotency-Key": f"key-{n}"})
    for _ in range(2):  # the second is a replay
        call("POST", messages, json={"role": "user", "content": "again"}, headers=retry)
    call("GET", f"/api/v1/sessions/{sid}", headers=user())
    call("GET", messages, headers=user())
    call("GET", "/api/v1/sessions", headers=user())
    call("GET", "/api/v1/sessions/sess_0000000000000000", headers=user())  # 404
    call("POST", messages, json={"role": "nobody"}, headers=user())  # 422
    call("GET", f"/api/v1/sessions/{sid}")  # 401: no identity
    if n % 2:
        call("DELETE", f"/api/v1/sessions/{sid}", headers=user())
    else:
        watched = watch_one_append(http, sid)
        statuses[watched] = statuses.get(watched, 0) + 1
    return statuses


def watching(http: httpx.Client) -> bool:
    found = re.search(
        r"^fm_session_feed_watchers(?:\{[^}]*\})? (\S+)$", http.get("/metrics").text, re.M
    )
    return found is not None and float(found[1]) > 0


def watch_one_append(http: httpx.Client, sid: str) -> int:
    """A header-only watcher waits; an append wakes it (the feed's panels get data)."""
    events = f"/api/v1/sessions/{sid}/events"
    current = http.get(f"{events}", headers={**user(), "Accept": "application/json"})
    last = current.json()["last_event_id"] if current.status_code == 200 else None
    answers: list[int] = []
    headers = {**user(), "Accept": "application/json", "Prefer": "wait=5"}
    if last:
        headers["Last-Event-ID"] = last

    def watch() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=10) as own:
            answers.append(own.get(events, headers=headers).status_code)

    watcher = threading.Thread(target=watch)
    watcher.start()
    deadline = time.monotonic() + 10  # the append must find the watcher waiting
    while time.monotonic() < deadline and not watching(http):
        time.sleep(0.02)
    http.post(
        f"/api/v1/sessions/{sid}/messages",
        json={"role": "assistant", "content": "watched"},
        headers=user(),
    )
    watcher.join(15)
    return answers[0] if answers else 0


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def storage_alert() -> dict[str, Any]:
    [alert] = [a for a in alerts() if a["alert"] == "FmSessionStorageUnavailable"]
    return alert


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def service(tmp_path: Path, redis: RedisProcess) -> Iterator[ServiceProcess]:
    with running_service(
        tmp_path / "service",
        "serve",
        REDIS_URL=redis.url,
        REDIS_TIMEOUT_SECONDS="1",
        CLEANUP_INTERVAL_SECONDS="1",
        LOG_LEVEL="WARNING",
    ) as process:
        yield process


@pytest.fixture
def prometheus(tmp_path: Path, service: ServiceProcess) -> Iterator[PrometheusProcess]:
    with running_prometheus(tmp_path / "prometheus", f"127.0.0.1:{service.port}") as server:
        yield server


@pytest.fixture
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=10) as client:
        yield client


def test_every_panel_returns_data_and_the_storage_alert_fires_during_an_outage(
    prometheus: PrometheusProcess, http: httpx.Client, redis: RedisProcess
) -> None:
    began = time.time()
    eventually(lambda: prometheus.value(f'up{{job="{JOB}"}}') == 1 or None, 30, "first scrape")
    alert_expr = storage_alert()["expr"]
    sent: dict[int, int] = {}

    def traffic_until(done: Any, at_least: float, timeout: float, what: str) -> None:
        """Rounds of traffic for `at_least` seconds and until `done()`."""
        phase = time.monotonic()

        def round_then_check() -> bool | None:
            for status, count in mixed_traffic(http).items():
                sent[status] = sent.get(status, 0) + count
            return (time.monotonic() - phase >= at_least and done()) or None

        eventually(round_then_check, at_least + timeout, what)

    # 1. Healthy: traffic until Prometheus has scraped a good share of it, and the
    # recording rules have turned it into SLIs.
    traffic_until(
        lambda: (
            (prometheus.value('sum(fm_session_http_requests_total{status="201"})') or 0) >= 20
            and prometheus.value(f'job:fm_session_api_errors:ratio_rate5m{{job="{JOB}"}}')
            is not None
            and (prometheus.value("sum(fm_session_idempotent_replays_total)") or 0) > 0
        ),
        PHASES[0],
        40,
        "Prometheus sees the healthy traffic",
    )
    assert prometheus.query(alert_expr) == [], "the storage alert is quiet while Redis is up"

    # 2. Redis goes away: requests answer 503 storage_unavailable, /ready fails, and the
    # alert's expression fires (the alert itself goes pending: `for: 2m`).
    redis.stop()
    outage_began = time.time()
    traffic_until(
        lambda: prometheus.query(alert_expr), PHASES[1], 30, "the storage alert expression fires"
    )
    [firing] = prometheus.query(alert_expr)
    assert firing["metric"] == {"job": JOB} and float(firing["value"][1]) > 0
    assert http.get("/ready").status_code == 503
    eventually(
        lambda: (
            [
                a
                for a in prometheus.alerts()
                if a["labels"]["alertname"] == "FmSessionStorageUnavailable"
                and a["state"] in ("pending", "firing")
            ]
            or None
        ),
        15,
        "Prometheus holds the alert pending",
    )
    assert sent.get(503, 0) > 0, sent

    # 3. Redis is back: the service recovers by itself, and Prometheus sees successes
    # again (no 201 was answered during the outage, so its count before is final).
    created = 'sum(fm_session_http_requests_total{status="201"})'
    before = prometheus.value(created)
    redis.start()
    traffic_until(
        lambda: (
            http.get("/ready").status_code == 200
            and prometheus.value(f"{created} > {before}") is not None
        ),
        PHASES[2],
        30,
        "the service and Prometheus see the recovery",
    )
    ended = time.time()
    print(f"statuses sent: {dict(sorted(sent.items()))}; outage at +{outage_began - began:.1f}s")
    print(f"traffic over at +{ended - began:.1f}s")

    # 4. Every panel's every query returns data over the run, with the labels its
    # legend names.
    answers: dict[str, dict[str, Any]] = {}
    empty = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            result = prometheus.query_range(substitute(target["expr"]), began, ended)
            answers.setdefault(panel["title"], {})[target["refId"]] = result
            if not any(finite_points(series) for series in result):
                empty.append(f"{panel['title']} {target['refId']}: {target['expr']}")
                continue
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]):
                assert all(label in s["metric"] for s in result), (panel["title"], label)
    assert empty == [], "panels without data:\n" + "\n".join(empty)
    assert len(answers) == len(dashboard_panels()) >= 15
    print(f"every panel queried at +{time.time() - began:.1f}s")

    if PNG:  # the docs' screenshot, from this run's answers
        load_renderer().render(
            dashboard(),
            answers,
            Path(PNG),
            start=began,
            caption=f"({ended - began:.0f} s; Redis down at +{outage_began - began:.0f} s)",
        )
