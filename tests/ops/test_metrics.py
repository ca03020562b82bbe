"""`GET /metrics`: Prometheus text with request, storage, session and message
metrics; aggregated across workers in multiprocess mode."""

from __future__ import annotations

import asyncio
import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from session_service.domain.models import Role
from tests.conftest import ClientFactory, create_session, make_settings, running_app, user
from tests.feed import wait_subscribed
from tests.helpers import sample, scrape, wait_past
from tests.ops.service import running_service
from tests.servers import free_port


def domain_series(text: str) -> dict[tuple[str, str], float]:
    """Every sample of the domain counters, by (metric, label value)."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "fm_session_sessions_total":
                out[("sessions", s.labels["event"])] = float(s.value)
            elif s.name == "fm_session_messages_appended_total":
                out[("messages", s.labels["role"])] = float(s.value)
    return out


EXPECTED_AT_ZERO = {
    **{
        ("sessions", event): 0.0
        for event in ("created", "resumed", "expired", "deleted", "evicted")
    },
    **{("messages", role): 0.0 for role in get_args(Role)},
}


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    route = "/api/v1/sessions/{session_id}"
    labels = {"method": "GET", "route": route, "status": "200"}
    before = sample(await scrape(client), "fm_session_http_requests_total", **labels)
    for _ in range(2):
        session = await create_session(client)
        await client.get(f"/api/v1/sessions/{session['session_id']}", headers=user())
    text = await scrape(client)
    assert sample(text, "fm_session_http_requests_total", **labels) == before + 2
    assert session["session_id"] not in text, "raw paths must not become labels"


async def test_request_latency_is_a_histogram_per_route(client: httpx.AsyncClient) -> None:
    name = "fm_session_http_request_duration_seconds_count"
    before = sample(await scrape(client), name, method="GET", route="/health")
    await client.get("/health")
    text = await scrape(client)
    assert sample(text, name, method="GET", route="/health") == before + 1
    bucket = sample(
        text, "fm_session_http_request_duration_seconds_bucket", route="/health", le="+Inf"
    )
    assert bucket == before + 1


async def test_unknown_paths_share_one_route_label(client: httpx.AsyncClient) -> None:
    await client.get("/no/such/path/abc123")
    text = await scrape(client)
    assert sample(text, "fm_session_http_requests_total", route="unmatched", status="404") >= 1
    assert "abc123" not in text


async def test_storage_operations_are_timed_by_operation(client: httpx.AsyncClient) -> None:
    name = "fm_session_storage_operation_duration_seconds_count"
    before = await scrape(client)
    session = await create_session(client)
    await client.post(
        f"/api/v1/sessions/{session['session_id']}/messages",
        json={"role": "user", "content": "hi"},
        headers=user(),
    )
    after = await scrape(client)
    for operation in ("create", "append"):
        assert (
            sample(after, name, operation=operation)
            == sample(before, name, operation=operation) + 1
        ), operation


async def test_storage_failures_are_counted_by_operation_and_kind() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    name = "fm_session_storage_errors_total"
    async with running_app(make_settings(dead)) as client:
        before = sample(await scrape(client), name, operation="create", kind="ConnectionError")
        response = await client.post("/api/v1/sessions", json={}, headers=user())
        assert response.status_code == 503
        assert response.json()["code"] == "storage_unavailable"
        after = sample(await scrape(client), name, operation="create", kind="ConnectionError")
    assert after == before + 1


async def test_a_worker_without_its_feed_subscription_is_counted(redis_url: str) -> None:
    """`fm_session_feed_unsubscribed_workers`: one more for a worker whose change feed
    cannot subscribe (its Redis is down), none once it holds its subscription, and
    nothing left behind by a worker that stopped."""
    name = "fm_session_feed_unsubscribed_workers"
    before = sample(generate_latest().decode(), name)  # another test's app may still run
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with running_app(make_settings(dead)) as down:
        assert sample(await scrape(down), name) == before + 1
    async with running_app(make_settings(redis_url)) as up:
        await wait_subscribed(up)
        assert sample(await scrape(up), name) == before
    assert sample(generate_latest().decode(), name) == before


async def test_error_answers_are_counted_by_their_code(client: httpx.AsyncClient) -> None:
    """Every layer's errors (the guard, a handler, the router) are counted by `code`."""
    name = "fm_session_http_errors_total"
    route = "/api/v1/sessions/{session_id}"
    unknown = "/api/v1/sessions/sess_0000000000000000"
    expected = [
        (
            {"method": "GET", "route": route, "status": "404", "code": "session_not_found"},
            unknown,
            user(),
        ),
        # The guard answers before routing: the route is not known yet.
        (
            {"method": "GET", "route": "unmatched", "status": "401", "code": "missing_user_id"},
            unknown,
            {},
        ),
        (
            {"method": "GET", "route": "unmatched", "status": "404", "code": "not_found"},
            "/nowhere",
            {},
        ),
    ]
    before = await scrape(client)
    for _, path, headers in expected:
        await client.get(path, headers=headers)
    session = await create_session(client)
    invalid = await client.post(
        f"/api/v1/sessions/{session['session_id']}/messages",
        json={"role": "nobody"},
        headers=user(),
    )
    assert invalid.json()["code"] == "validation_error"
    after = await scrape(client)
    for labels, _, _ in expected:
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, labels
    # The route too: another test of the process may have answered a 422 elsewhere.
    labels = {
        "method": "POST",
        "route": "/api/v1/sessions/{session_id}/messages",
        "status": "422",
        "code": "validation_error",
    }
    assert sample(after, name, **labels) == sample(before, name, **labels) + 1
    assert sample(after, name, status="201") == 0, "successes are not errors"


def test_error_code_is_a_bounded_label() -> None:
    from session_service.api.middleware import error_code

    assert error_code(b'{"detail":"x","code":"session_not_found"}') == "session_not_found"
    assert error_code(b'{"detail":"x","code":"Robert\'); DROP"}') == "other"
    assert error_code(b"<html>bad gateway</html>") == "none"
    assert error_code(b'["code"]') == "none"


async def test_idempotent_replays_are_counted_by_operation(client: httpx.AsyncClient) -> None:
    name = "fm_session_idempotent_replays_total"
    retry = {**user(), "Idempotency-Key": "replay-1"}
    before = await scrape(client)
    for _ in range(3):
        created = await client.post("/api/v1/sessions", json={}, headers=retry)
        assert created.status_code in (200, 201)
    url = f"/api/v1/sessions/{created.json()['session_id']}/messages"
    for _ in range(2):
        await client.post(url, json={"role": "user", "content": "q"}, headers=retry)
    batch = {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "r"}]}
    for _ in range(4):
        await client.post(url + "/batch", json=batch, headers={**user(), "Idempotency-Key": "b"})
    after = await scrape(client)
    deltas = {
        op: sample(after, name, operation=op) - sample(before, name, operation=op)
        for op in ("create", "append", "append_batch", "summarize", "fork")
    }
    assert deltas == {"create": 2, "append": 1, "append_batch": 3, "summarize": 0, "fork": 0}


async def test_session_lifecycle_events_are_counted(client: httpx.AsyncClient) -> None:
    name = "fm_session_sessions_total"
    before = await scrape(client)
    await create_session(client, client_id="ext-1")
    resumed = await client.post("/api/v1/sessions", json={"client_id": "ext-1"}, headers=user())
    assert resumed.json()["session_resumed"] is True
    session = await create_session(client)
    await client.delete(f"/api/v1/sessions/{session['session_id']}", headers=user())
    after = await scrape(client)
    deltas = {
        event: sample(after, name, event=event) - sample(before, name, event=event)
        for event in ("created", "resumed", "deleted")
    }
    assert deltas == {"created": 2, "resumed": 1, "deleted": 1}


async def test_expired_sessions_removed_by_cleanup_are_counted(make_client: ClientFactory) -> None:
    async with make_client(default_session_ttl=1) as client:
        before = sample(await scrape(client), "fm_session_sessions_total", event="expired")
        await create_session(client)
        removed = 0
        for _ in range(100):  # the session's one-second life runs out
            report = await client.post("/api/v1/sessions/cleanup", headers=user())
            removed = report.json()["cleaned_sessions"]
            if removed:
                break
            await asyncio.sleep(0.05)
        assert removed == 1
        after = sample(await scrape(client), "fm_session_sessions_total", event="expired")
    assert after == before + 1


async def test_expired_sessions_a_fork_removes_are_counted(
    make_client: ClientFactory, redis: Redis
) -> None:
    async with make_client(default_session_ttl=1) as client:
        source = await create_session(client, timeout_minutes=60)
        fading = await create_session(client)
        await wait_past(redis, fading["expires_at"])
        before = sample(await scrape(client), "fm_session_sessions_total", event="expired")
        url = f"/api/v1/sessions/{source['session_id']}/fork"
        assert (await client.post(url, json={}, headers=user())).status_code == 201
        after = sample(await scrape(client), "fm_session_sessions_total", event="expired")
    assert after == before + 1


async def test_appended_messages_are_counted_by_role_and_replays_are_not(
    client: httpx.AsyncClient,
) -> None:
    name = "fm_session_messages_appended_total"
    session = await create_session(client)
    url = f"/api/v1/sessions/{session['session_id']}/messages"
    before = await scrape(client)
    await client.post(url, json={"role": "user", "content": "q"}, headers=user())
    retry = {**user(), "Idempotency-Key": "k1"}
    for _ in range(2):
        await client.post(url, json={"role": "assistant", "content": "a"}, headers=retry)
    after = await scrape(client)
    assert sample(after, name, role="user") == sample(before, name, role="user") + 1
    assert sample(after, name, role="assistant") == sample(before, name, role="assistant") + 1


def health_count_per_worker(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """Each worker's own count of /health requests, read from its own sample file."""
    counts = {}
    for db in metrics_dir.glob("counter_*.db"):
        pid = db.stem.rsplit("_", 1)[1]
        if db.stat().st_size < mmap.PAGESIZE:
            counts[pid] = 0.0  # a worker still creating its file (it starts empty)
            continue
        alone = scratch / pid
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(db, alone / db.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        text = generate_latest(registry).decode()
        counts[pid] = sample(text, "fm_session_http_requests_total", route="/health")
    return counts


def test_metrics_aggregate_every_worker_in_multiprocess_mode(
    tmp_path: Path, redis_url: str
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with running_service(
        tmp_path,
        "serve",
        "--workers",
        "2",
        REDIS_URL=redis_url,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as service:
        sent = 0
        # Every process writes its counter file at start (domain counters at 0): new
        # connections until two of them have counted a /health request.
        per_worker: dict[str, float] = {}
        while sent < 400 and sum(1 for n in per_worker.values() if n) < 2:
            for _ in range(10):
                with httpx.Client(base_url=service.url) as http:
                    assert http.get("/health").status_code == 200
                sent += 1
            per_worker = health_count_per_worker(metrics_dir, tmp_path / f"probe{sent}")
        # A worker counts a request just after answering it: wait for every count to land.
        for attempt in range(100):
            per_worker = health_count_per_worker(metrics_dir, tmp_path / f"scratch{attempt}")
            if sum(per_worker.values()) >= sent + 1:
                break  # + 1: start() waited for one /health answer too
            time.sleep(0.02)
        text = httpx.get(f"{service.url}/metrics").text
    print(f"{sent} requests reached both workers: {per_worker}")
    # Aggregated across workers, the domain counters are there before any event too.
    assert domain_series(text) == EXPECTED_AT_ZERO
    # CPU and memory of the service: the sum over its live workers.
    assert sample(text, "process_resident_memory_bytes") > 2 * 10_000_000
    assert sample(text, "process_cpu_seconds_total") > 0
    serving = {pid: n for pid, n in per_worker.items() if n}
    assert len(serving) == 2, per_worker
    aggregated = sample(text, "fm_session_http_requests_total", route="/health")
    assert aggregated == sum(per_worker.values())


DIES_WITH_A_LIVE_GAUGE = """
import os
from session_service.observability import metrics
metrics.FEED_UNSUBSCRIBED.inc()
metrics.FEED_WATCHERS.inc()
metrics.CLEANUP_RUNS.inc()
os._exit(0)  # as a killed worker: no shutdown, no cleanup of its files
"""

SCRAPES = """
from session_service.observability import metrics
print(metrics.render()[0].decode())
"""


def test_a_dead_workers_live_gauges_leave_the_sum_and_its_counters_stay(
    tmp_path: Path,
) -> None:
    """uvicorn replaces a worker it killed without telling prometheus_client: the scrape
    drops a dead worker's `livesum` gauges (else one unsubscribed feed would alert
    forever) and keeps its counters."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", DIES_WITH_A_LIVE_GAUGE], env=env, check=True)
    assert list(tmp_path.glob("gauge_livesum_*.db")), "the dead worker wrote its gauges"
    text = subprocess.run(
        [sys.executable, "-c", SCRAPES], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert sample(text, "fm_session_feed_unsubscribed_workers") == 0
    assert sample(text, "fm_session_feed_watchers") == 0
    assert sample(text, "fm_session_cleanup_runs_total") == 1


def test_every_domain_counter_is_exported_at_zero_from_start(
    tmp_path: Path, redis_url: str
) -> None:
    """A dashboard or alert on `expired` must see a series before the first expiry."""
    with running_service(tmp_path, "serve", REDIS_URL=redis_url) as service:
        text = httpx.get(f"{service.url}/metrics").text
    assert domain_series(text) == EXPECTED_AT_ZERO
    assert ("sessions", "expired") in EXPECTED_AT_ZERO and ("messages", "tool") in EXPECTED_AT_ZERO
