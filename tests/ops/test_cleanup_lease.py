"""One cleanup at a time (issue 11, item 4): however many processes run, the
background cleanup runs once per CLEANUP_INTERVAL_SECONDS across all of them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from session_service.store.keys import Keys
from session_service.store.lease import Lease
from tests.ops.service import running_service
from tests.proxy import FaultProxy
from tests.servers import RedisProcess

INTERVAL = 1
RUNS = "fm_session_cleanup_runs_total"


def _runs(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == RUNS:
                return float(sample.value)
    raise AssertionError(f"{RUNS} is not exported")


def test_two_instances_run_the_cleanup_once_per_interval_between_them(tmp_path: Path) -> None:
    # A server of its own: three processes renew the lease every second, and a worker
    # still shutting down must not write into the server the next tests share.
    server = RedisProcess(tmp_path / "redis").start()
    try:
        _count_runs_of_two_instances(tmp_path, server.url)
    finally:
        server.stop()


def _count_runs_of_two_instances(tmp_path: Path, redis_url: str) -> None:
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


async def test_a_stale_holder_never_extends_the_lease_another_process_took(
    redis: Redis, redis_process: RedisProcess
) -> None:
    """Whatever a renewal sends after its first command waits at a proxy while the
    lease expires and another process takes it: the renewal must not extend the
    newcomer's lease (issue 20, defect 12)."""
    key = Keys("fms").lease("test")
    proxy = await FaultProxy(redis_process.port).start()
    stale_client = Redis.from_url(proxy.url, decode_responses=True)
    try:
        await stale_client.ping()  # the connection is open: its next chunk is the renewal
        stale = Lease(stale_client, key, 600_000)
        assert await stale.acquire() is True
        chunks: list[bytes] = []

        def after_the_first(chunk: bytes) -> bool:
            chunks.append(chunk)
            return len(chunks) > 1

        proxy.hold = after_the_first
        renewal = asyncio.create_task(stale.renew())
        held = asyncio.create_task(proxy.held.wait())
        done, _ = await asyncio.wait({renewal, held}, timeout=30, return_when="FIRST_COMPLETED")
        assert done, "the renewal neither finished nor sent a second command"
        await redis.delete(key)  # as when the stale holder's lease expires
        newcomer = Lease(redis, key, 60_000)
        assert await newcomer.acquire() is True
        proxy.release()
        await asyncio.wait_for(renewal, 30)
        held.cancel()

        assert await redis.get(key) == newcomer.token
        ttl = await redis.pttl(key)
        assert 0 < ttl <= 60_000, f"the stale holder extended the newcomer's lease to {ttl} ms"
    finally:
        await stale_client.aclose()
        await proxy.stop()
