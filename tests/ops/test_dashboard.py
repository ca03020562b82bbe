"""deploy/grafana/: the committed dashboard is the generator's output, shows what an
operator needs, and (with the rules) names only metrics the service exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ops.promql import (
    DASHBOARD_JSON,
    dashboard,
    dashboard_panels,
    load_generator,
    load_renderer,
    metric_names,
    queries,
    unknown_metrics,
)
from tests.ops.service import running_service

# What the dashboard must show (issue 25), as the metric each view reads.
REQUIRED = {
    "fm_session_http_requests_total",  # requests per second per route
    "fm_session_http_errors_total",  # errors, 4xx by code, 5xx, 503 storage_unavailable
    "fm_session_http_request_duration_seconds_bucket",  # p50/p99 per route
    "fm_session_storage_operation_duration_seconds_bucket",  # Redis command latency
    "fm_session_storage_errors_total",
    "fm_session_sessions_total",  # created, resumed, expired, deleted, evicted
    "fm_session_messages_appended_total",  # by role
    "fm_session_cleanup_runs_total",
    "fm_session_idempotent_replays_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
}


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[str]:
    """What a real service process exports, once it has answered a request."""
    workdir = tmp_path_factory.mktemp("exposition")
    with running_service(workdir, "serve", REDIS_URL=redis_url) as service:
        yield httpx.get(f"{service.url}/metrics", timeout=10).text


def test_committed_dashboard_is_what_the_generator_writes() -> None:
    generator = load_generator()
    assert DASHBOARD_JSON.read_text() == generator.render()
    assert generator.main(["--check"]) == 0


def test_the_generator_check_fails_on_a_stale_dashboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = load_generator()
    stale = tmp_path / "fm-session-service.json"
    stale.write_text(DASHBOARD_JSON.read_text().replace("p99", "p98"))
    monkeypatch.setattr(generator, "OUTPUT", stale)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert stale.read_text() == DASHBOARD_JSON.read_text()


def test_dashboard_shows_what_an_operator_needs() -> None:
    read = set().union(*(metric_names(t["expr"]) for p in dashboard_panels() for t in p["targets"]))
    assert read >= REQUIRED, REQUIRED - read
    titles = {p["title"] for p in dashboard()["panels"]}
    assert {"4xx by code", "5xx by code", "503 storage_unavailable"} <= titles
    assert {"Latency p50 by route", "Latency p99 by route"} <= titles
    # Every panel reads the data source and the job the operator picks.
    for panel in dashboard_panels():
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])


def test_the_change_feed_row_shows_its_watchers_events_and_delivery() -> None:
    generator = load_generator()
    assert generator.CHANGE_FEED in generator.ROWS
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert generator.CHANGE_FEED.title in rows
    exprs = " ".join(q.expr for panel in generator.CHANGE_FEED.panels for q in panel.queries)
    for metric in (
        "fm_session_feed_watchers",
        "fm_session_feed_events_sent_total",
        "fm_session_feed_delivery_seconds_bucket",
    ):
        assert metric in exprs, metric


def test_every_panel_and_rule_names_a_metric_the_service_exports(exposition: str) -> None:
    assert unknown_metrics(queries(), exposition) == {}


def test_the_check_fails_for_a_metric_the_service_does_not_export(exposition: str) -> None:
    """A panel on a metric the service does not export is caught."""
    found = unknown_metrics(
        {
            "watchers": 'sum(fm_session_watchers{job=~"$job"})',
            "typo": 'rate(fm_session_http_request_total{route="/x"}[5m]) > 0',
            "fine": "sum by (le) (rate(fm_session_http_request_duration_seconds_bucket[1m]))",
        },
        exposition,
    )
    assert found == {"watchers": {"fm_session_watchers"}, "typo": {"fm_session_http_request_total"}}


def test_metric_names_skips_functions_labels_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"/api/.+",le!="x"}'
        "[$__rate_interval]))) > 0 and on (job) count by (job) (b offset 1h) or absent(up)"
    )
    assert metric_names(expr) == {"a_bucket", "b", "up"}


@pytest.mark.slow
def test_the_screenshot_renderer_draws_every_panel(tmp_path: Path) -> None:
    """docs/dashboard.png is drawn by deploy/grafana/render.py from the live test's
    answers; here from made-up ones, one series per query, with its legend's labels."""
    answers = {
        panel["title"]: {
            target["refId"]: [
                {
                    "metric": {"route": "/api/v1/sessions", "code": "x", "instance": "i"},
                    "values": [[1000 + i, str(i / 10)] for i in range(5)] + [[1005, "NaN"]],
                }
            ]
            for target in panel["targets"]
        }
        for panel in dashboard_panels()
    }
    png = load_renderer().render(dashboard(), answers, tmp_path / "d.png", start=1000.0)
    assert png.read_bytes().startswith(b"\x89PNG")
    renderer = load_renderer()
    assert renderer.legend("{{code}} {{route}}", {"route": "/r", "code": "c"}) == "c /r"
    assert renderer.legend("{{missing}}", {}) == "value"
