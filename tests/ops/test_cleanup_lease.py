"""One cleanup at a time (issue 11, item 4): however many processes run, the
background cleanup runs once per CLEANUP_INTERVAL_SECONDS across all of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from session_service.store.keys import Keys
from session_service.store.lease import Lease
from tests.ops.service import running_service

INTERVAL = 1
RUNS = "fm_session_cleanup_runs_total"


def _runs(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == RUNS:
                return float(sample.value)
    raise AssertionError(f"{RUNS} is not exported")


def test_two_instances_run_the_cleanup_once_per_interval_between_them(
    tmp_path: Path, redis_url: str
) -> None:
    settings = {"REDIS_URL": redis_url, "CLEANUP_INTERVAL_SECONDS": str(INTERVAL)}
    with (
        running_service(tmp_path / "a", "serve", **settings) as a,
        running_service(tmp_path / "b", "serve", "--workers", "2", **settings) as b,
    ):
        # Counted from here: runs before this point are not in the window.
        started = time.monotonic()
        before = _runs(a.url) + _runs(b.url)
        per_instance = {"a": 0.0, "b": 0.0}
        while sum(per_instance.values()) - before < 6:
            assert time.monotonic() - started < 60, per_instance
            time.sleep(0.2)
            per_instance = {"a": _runs(a.url), "b": _runs(b.url)}
        elapsed = time.monotonic() - started
    runs = sum(per_instance.values()) - before
    print(f"{runs:.0f} runs in {elapsed:.2f}s across 3 processes: {per_instance}")
    # Each run holds the lease for INTERVAL from its start: in a window of `elapsed`
    # seconds at most elapsed / INTERVAL + 1 runs start. Without the lease the three
    # processes would run three times as often.
    assert runs <= elapsed / INTERVAL + 1


async def test_the_lease_has_one_holder_until_it_expires(redis: Redis) -> None:
    key = Keys("fms").lease("test")
    first, second = Lease(redis, key, 60_000), Lease(redis, key, 60_000)
    assert await first.acquire() is True
    assert await second.acquire() is False
    assert await second.renew() is False  # not the holder: the holder's lease stays
    assert await redis.get(key) == first.token
    assert await first.renew() is True
    await redis.delete(key)  # as when it expires
    assert await second.acquire() is True
    assert await first.renew() is False
