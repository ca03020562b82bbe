"""The service's Grafana dashboard, as code (grafana-foundation-sdk).

    python deploy/grafana/dashboard.py            writes deploy/grafana/fm-session-service.json
    python deploy/grafana/dashboard.py --check    fails when the committed JSON is stale

The committed JSON is what ships (import it in Grafana, or provision it from a
ConfigMap); tests/ops/test_dashboard.py checks it equals this script's output, that
every metric a panel names is one the service exports, and (against a real
Prometheus scraping a real service) that every panel's queries return data.

Every query selects `job=~"$job"`: the `job` variable lists the scrape jobs that
export `fm_session_http_requests_total`. `$__rate_interval` is Grafana's own.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

OUTPUT = Path(__file__).with_name("fm-session-service.json")
UID = "fm-session-service"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job=~"$job"'
RATE = "[$__rate_interval]"
# The SLO the recording rules in deploy/prometheus/ measure against (see docs/runbooks.md).
AVAILABILITY_OBJECTIVE = 0.999
LATENCY_OBJECTIVE = 0.99


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """One panel: its queries, and how to read them."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def rate(metric: str, selector: str = "", by: str = "") -> str:
    labels = ",".join(filter(None, (JOB, selector)))
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{labels}}}{RATE}))"


def quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, {rate(metric + '_bucket', selector, f'le, {by}')})"


API = 'route=~"/api/.+"'

TRAFFIC = RowSpec(
    "Traffic and latency",
    (
        PanelSpec(
            "Requests per second by route",
            "Every answer, by route template (unknown paths are `unmatched`).",
            (Query(rate("fm_session_http_requests_total", by="route"), "{{route}}"),),
            unit="reqps",
        ),
        PanelSpec(
            "Error answers per second by route",
            "Answers with status >= 400, by route and status.",
            (
                Query(
                    rate("fm_session_http_errors_total", by="route, status"),
                    "{{status}} {{route}}",
                ),
            ),
            unit="reqps",
        ),
        PanelSpec(
            "Latency p50 by route",
            "Median request duration, from the per-route histogram.",
            (
                Query(
                    quantile(0.5, "fm_session_http_request_duration_seconds", "route"), "{{route}}"
                ),
            ),
            unit="s",
        ),
        PanelSpec(
            "Latency p99 by route",
            "99th percentile request duration; the latency SLO counts answers under 250 ms.",
            (
                Query(
                    quantile(0.99, "fm_session_http_request_duration_seconds", "route"), "{{route}}"
                ),
            ),
            unit="s",
        ),
    ),
)

ERRORS = RowSpec(
    "Errors",
    (
        PanelSpec(
            "4xx by code",
            "Client errors by the stable `code` of their body (see the README's Errors).",
            (Query(rate("fm_session_http_errors_total", 'status=~"4.."', by="code"), "{{code}}"),),
            unit="reqps",
        ),
        PanelSpec(
            "5xx by code",
            "Server errors: `storage_unavailable` (503) and `storage_full` (507) are storage's; "
            "`internal_error` (500) is a bug.",
            (
                Query(
                    rate("fm_session_http_errors_total", 'status=~"5.."', by="status, code"),
                    "{{status}} {{code}}",
                ),
            ),
            unit="reqps",
        ),
        PanelSpec(
            "503 storage_unavailable",
            "Answers saying storage could not be reached in time, and the storage failures "
            "behind them (by Redis exception or error code).",
            (
                Query(
                    rate("fm_session_http_errors_total", 'code="storage_unavailable"'),
                    "503 storage_unavailable",
                ),
                Query(
                    rate("fm_session_storage_errors_total", by="kind"),
                    "storage error {{kind}}",
                ),
            ),
            unit="reqps",
        ),
    ),
)

SLO = RowSpec(
    "SLOs (recording rules in deploy/prometheus/)",
    (
        PanelSpec(
            "Availability (non-5xx share of API answers)",
            f"Objective {AVAILABILITY_OBJECTIVE:.1%} over 30 days.",
            (
                Query(f"1 - job:fm_session_api_errors:ratio_rate5m{{{JOB}}}", "5m"),
                Query(f"1 - job:fm_session_api_errors:ratio_rate1h{{{JOB}}}", "1h"),
            ),
            unit="percentunit",
        ),
        PanelSpec(
            "Latency (share of API answers under 250 ms)",
            f"Objective {LATENCY_OBJECTIVE:.0%} over 30 days.",
            (
                Query(f"1 - job:fm_session_api_slow:ratio_rate5m{{{JOB}}}", "5m"),
                Query(f"1 - job:fm_session_api_slow:ratio_rate1h{{{JOB}}}", "1h"),
            ),
            unit="percentunit",
        ),
        PanelSpec(
            "Error budget burn rate (1h)",
            "1 spends the 30-day budget in 30 days; the page fires at 14.4 (1h and 5m).",
            (
                Query(
                    f"job:fm_session_api_errors:ratio_rate1h{{{JOB}}} "
                    f"/ {1 - AVAILABILITY_OBJECTIVE:g}",
                    "availability",
                ),
                Query(
                    f"job:fm_session_api_slow:ratio_rate1h{{{JOB}}} / {1 - LATENCY_OBJECTIVE:g}",
                    "latency",
                ),
            ),
            kind="stat",
        ),
    ),
)

STORAGE = RowSpec(
    "Storage",
    (
        PanelSpec(
            "Redis command latency p99 by operation",
            "One store operation is one round trip (a Lua script, a command or a pipeline); "
            "its duration as the service sees it, network included.",
            (
                Query(
                    quantile(0.99, "fm_session_storage_operation_duration_seconds", "operation"),
                    "{{operation}}",
                ),
            ),
            unit="s",
        ),
        PanelSpec(
            "Redis operations per second",
            "Store operations by name (`append`, `create`, `get`, ...).",
            (
                Query(
                    rate("fm_session_storage_operation_duration_seconds_count", by="operation"),
                    "{{operation}}",
                ),
            ),
            unit="ops",
        ),
    ),
)

DOMAIN = RowSpec(
    "Sessions and messages",
    (
        PanelSpec(
            "Sessions by event",
            "created, resumed, expired (pruned), deleted, evicted (SESSION_LIMIT_POLICY).",
            (Query(rate("fm_session_sessions_total", by="event"), "{{event}}"),),
            unit="ops",
        ),
        PanelSpec(
            "Messages appended by role",
            "Stored messages; retries answered by Idempotency-Key are not counted here.",
            (Query(rate("fm_session_messages_appended_total", by="role"), "{{role}}"),),
            unit="ops",
        ),
        PanelSpec(
            "Idempotent replays by operation",
            "Retries answered from their Idempotency-Key record instead of writing again.",
            (Query(rate("fm_session_idempotent_replays_total", by="operation"), "{{operation}}"),),
            unit="ops",
        ),
        PanelSpec(
            "Cleanup runs (last hour)",
            "Background cleanup runs across every instance (one per CLEANUP_INTERVAL_SECONDS).",
            (Query(f"sum(increase(fm_session_cleanup_runs_total{{{JOB}}}[1h]))", "runs"),),
            kind="stat",
        ),
    ),
)

DELIVERY = rate("fm_session_feed_delivery_seconds_bucket", by="le")

CHANGE_FEED = RowSpec(
    "Change feed",
    (
        PanelSpec(
            "Open change feeds",
            "Streams and waiting header-only polls, over every instance "
            "(MAX_WATCHERS_PER_USER per user, MAX_WATCHERS_PER_WORKER per worker); and the "
            "workers whose feed holds no Redis subscription (their watchers are not woken "
            "by changes: FmSessionFeedUnsubscribed).",
            (
                Query(f"sum(fm_session_feed_watchers{{{JOB}}})", "watchers"),
                Query(f"sum(fm_session_feed_unsubscribed_workers{{{JOB}}})", "unsubscribed"),
            ),
        ),
        PanelSpec(
            "Feed events sent by kind",
            "message, summary, session, rewound, deleted: events written to clients.",
            (Query(rate("fm_session_feed_events_sent_total", by="kind"), "{{kind}}"),),
            unit="ops",
        ),
        PanelSpec(
            "Feed delivery latency",
            "From the change's commit in Redis (Redis time) to the write of its event.",
            (
                Query(f"histogram_quantile(0.5, {DELIVERY})", "p50"),
                Query(f"histogram_quantile(0.99, {DELIVERY})", "p99"),
            ),
            unit="s",
        ),
        PanelSpec(
            "Feeds ended by the server",
            "deleted (the session went), shutdown (a graceful stop), slow_reader (the client "
            "stopped reading).",
            (Query(rate("fm_session_feed_closed_total", by="reason"), "{{reason}}"),),
            unit="ops",
        ),
    ),
)

PROCESS = RowSpec(
    "Process",
    (
        PanelSpec(
            "CPU by instance",
            "CPU seconds per second; with --workers N, the sum over the workers.",
            (Query(f"rate(process_cpu_seconds_total{{{JOB}}}{RATE})", "{{instance}}"),),
            unit="percentunit",
        ),
        PanelSpec(
            "Resident memory by instance",
            "The Kubernetes Deployment's limit is 512 MiB; FmSessionMemoryGrowth predicts it.",
            (Query(f"process_resident_memory_bytes{{{JOB}}}", "{{instance}}"),),
            unit="bytes",
        ),
    ),
)

ROWS: tuple[RowSpec, ...] = (TRAFFIC, ERRORS, SLO, STORAGE, DOMAIN, CHANGE_FEED, PROCESS)


def _target(query: Query, ref: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref)
        .datasource(DATASOURCE)
    )


def _panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    panel: timeseries.Panel | stat.Panel
    if spec.kind == "stat":
        panel = stat.Panel()
    else:
        panel = timeseries.Panel().fill_opacity(10).line_width(1)
    panel = (
        panel.title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .height(8)
        .span(spec.width)
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel = panel.with_target(_target(query, ref))
    return panel


def build() -> dict[str, object]:
    """The dashboard as Grafana's JSON model."""
    board = (
        dash.Dashboard("FaultMaven session service")
        .uid(UID)
        .description("Traffic, errors, SLOs, storage and domain events of fm-session-service.")
        .tags(["faultmaven", "fm-session-service"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .editable()
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dash.QueryVariable("job")
            .label("Job")
            .datasource(DATASOURCE)
            .query("label_values(fm_session_http_requests_total, job)")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".+")
        )
    )
    for row in ROWS:
        if not row.panels:
            continue
        board = board.with_row(dash.Row(row.title))
        for spec in row.panels:
            board = board.with_panel(_panel(spec))
    encoded: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="fail when the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python deploy/grafana/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
