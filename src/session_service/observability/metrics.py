"""Prometheus metrics. With several workers, set PROMETHEUS_MULTIPROC_DIR (the
CLI does this for `--workers N`) and every worker's samples are aggregated."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("fm_session_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "fm_session_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STORAGE_LATENCY = Histogram(
    "fm_session_storage_operation_duration_seconds",
    "Storage operation latency",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
STORAGE_ERRORS = Counter(
    "fm_session_storage_errors_total", "Storage operations that failed", ["operation", "kind"]
)
SESSIONS = Counter(
    "fm_session_sessions_total", "Session lifecycle events", ["event"]
)  # event: created, resumed, expired, deleted
MESSAGES = Counter("fm_session_messages_appended_total", "Messages appended", ["role"])


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
