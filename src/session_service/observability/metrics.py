"""Prometheus metrics. With several workers, set PROMETHEUS_MULTIPROC_DIR (the
CLI does this for `--workers N`) and every worker's samples are aggregated.

    fm_session_http_requests_total{method,route,status}      requests by route template
    fm_session_http_request_duration_seconds{method,route}   latency histogram per route
    fm_session_http_errors_total{method,route,status,code}   error answers by their `code`
    fm_session_storage_operation_duration_seconds{operation} SessionStore call latency
    fm_session_storage_errors_total{operation,kind}          storage failures by kind
    fm_session_sessions_total{event}                         created, resumed, expired, deleted,
                                                             evicted (SESSION_LIMIT_POLICY)
    fm_session_messages_appended_total{role}                 messages appended
    fm_session_idempotent_replays_total{operation}           retries answered from the
                                                             Idempotency-Key record
    fm_session_cleanup_runs_total                            background cleanup runs
    fm_session_feed_watchers                                 open change feeds (streams and
                                                             waiting polls), summed over workers
    fm_session_feed_unsubscribed_workers                     workers whose change feed holds no
                                                             Redis subscription (changes wake
                                                             no watcher there until it is back;
                                                             a dead worker's is dropped)
    fm_session_feed_events_sent_total{kind}                  change feed events written
    fm_session_feed_delivery_seconds                         commit in Redis -> event written
    fm_session_feed_closed_total{reason}                     feeds the server ended: deleted,
                                                             shutdown, slow_reader

With one process, the default registry adds `process_*` (CPU, memory, file
descriptors) and `python_*`; with several workers, `process_*` is the sum over
the live workers (observability/process.py).
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from redis.exceptions import RedisError

from session_service import errors
from session_service.domain.events import EVENT_KINDS
from session_service.domain.models import Role
from session_service.observability.process import WorkersProcessCollector, dead_worker_pids

#: The media type `/metrics` serves (Prometheus text exposition format).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

REQUESTS = Counter("fm_session_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "fm_session_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter(
    "fm_session_http_errors_total",
    "Error answers (status >= 400) by the stable `code` of their JSON body",
    ["method", "route", "status", "code"],
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
)  # event: created, resumed, expired, deleted, evicted
MESSAGES = Counter("fm_session_messages_appended_total", "Messages appended", ["role"])
REPLAYS = Counter(
    "fm_session_idempotent_replays_total",
    "Writes answered from their Idempotency-Key record instead of being applied again",
    ["operation"],
)
CLEANUP_RUNS = Counter(
    "fm_session_cleanup_runs_total",
    "Background cleanup runs (one per CLEANUP_INTERVAL_SECONDS across every process)",
)

FEED_WATCHERS = Gauge(
    "fm_session_feed_watchers",
    "Open change feeds (streams and waiting header-only polls)",
    multiprocess_mode="livesum",
)
FEED_UNSUBSCRIBED = Gauge(
    "fm_session_feed_unsubscribed_workers",
    "Workers whose change feed holds no Redis subscription: their watchers are not woken by "
    "changes (streams wait for a reconnect, polls for their next try)",
    multiprocess_mode="livesum",
)
FEED_EVENTS = Counter(
    "fm_session_feed_events_sent_total", "Change feed events written to clients", ["kind"]
)
FEED_DELIVERY = Histogram(
    "fm_session_feed_delivery_seconds",
    "From a change's commit in Redis (Redis time) to the write of its event to the socket",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FEED_CLOSED = Counter(
    "fm_session_feed_closed_total", "Change feeds the server ended, by reason", ["reason"]
)
FEED_CLOSE_REASONS = ("deleted", "shutdown", "slow_reader")

#: Every value the domain counters' labels can take.
SESSION_EVENTS = ("created", "resumed", "expired", "deleted", "evicted")
MESSAGE_ROLES: tuple[str, ...] = get_args(Role)
#: The writes an Idempotency-Key makes safe to retry, by the script that stores them.
REPLAY_OPERATIONS = {
    "create": "create",
    "append": "append",
    "append_batch": "append_batch",
    "summarize": "summarize",
    "fork_begin": "fork",
    "fork": "fork",
}


def _export_at_zero() -> None:
    # A series that appears only after its first event is invisible to rate()
    # and to alerts until then (Prometheus: "avoid missing metrics").
    for event in SESSION_EVENTS:
        SESSIONS.labels(event)
    for role in MESSAGE_ROLES:
        MESSAGES.labels(role)
    for operation in set(REPLAY_OPERATIONS.values()):
        REPLAYS.labels(operation)
    for kind in EVENT_KINDS:
        FEED_EVENTS.labels(kind)
    for reason in FEED_CLOSE_REASONS:
        FEED_CLOSED.labels(reason)


def count_replay(script: str, replayed: bool) -> None:
    """A writing script answered `{'replay', ...}` (store/reply_decoding.py tells): the retry
    changed nothing."""
    if replayed:
        REPLAYS.labels(REPLAY_OPERATIONS.get(script, script)).inc()


_export_at_zero()

T = TypeVar("T")
#: SessionStore methods that are not storage operations.
_NOT_OPERATIONS = frozenset({"close"})


@functools.cache
def _latency(operation: str) -> Any:
    # Resolving a label child costs more than observing it; operations are few.
    return STORAGE_LATENCY.labels(operation)


def _record_error(operation: str, exc: BaseException) -> None:
    """Count Redis failures (by exception class) and storage errors (by code)."""
    if isinstance(exc, RedisError):
        STORAGE_ERRORS.labels(operation, type(exc).__name__).inc()
    elif isinstance(exc, errors.StorageError):
        STORAGE_ERRORS.labels(operation, exc.code).inc()


class _Measured:
    """One storage round trip: its latency observed and, when it raises, its error counted."""

    __slots__ = ("operation", "started")

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            _record_error(self.operation, exc)
        _latency(self.operation).observe(time.perf_counter() - self.started)


def _timed(operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _Measured(operation):
            return await method(*args, **kwargs)

    return wrapper


def _timed_iter(operation: str, method: Callable[..., AsyncIterator[Any]]) -> Callable[..., Any]:
    """An async generator: each step is one storage round trip, timed on its own
    (the consumer's pace, e.g. a slow download, is not storage latency)."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        inner = method(*args, **kwargs)
        try:
            while True:
                with _Measured(operation):
                    try:
                        item = await inner.__anext__()
                    except StopAsyncIteration:
                        return
                yield item
        finally:
            await inner.aclose()  # type: ignore[attr-defined]

    return wrapper


def instrument_store(cls: type[T]) -> type[T]:
    """Class decorator: time every public async method of the store, count its failures.

    Inherited methods too: the store is assembled from one class per concern.
    """
    for name in dir(cls):
        if name.startswith("_") or name in _NOT_OPERATIONS:
            continue
        member = getattr(cls, name)
        if inspect.isasyncgenfunction(member):
            setattr(cls, name, _timed_iter(name, member))
        elif inspect.iscoroutinefunction(member):
            setattr(cls, name, _timed(name, member))
    return cls


def render() -> tuple[bytes, str]:
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # A dead worker's live gauges (`livesum`: open feeds, unsubscribed feeds) would
        # count forever; its counters stay, as prometheus_client intends.
        for pid in dead_worker_pids(directory):
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(WorkersProcessCollector(directory))
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(), CONTENT_TYPE
