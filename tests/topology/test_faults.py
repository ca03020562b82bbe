"""Outages: a Sentinel failover, a Redis restart and Redis down at start.

Each test owns its servers (they are killed or restarted), so the shared
topologies of the other tests stay healthy. No request may answer 500 or hang:
during an outage the service answers 503 `storage_unavailable` with Retry-After,
and after it every acknowledged (2xx) message is still there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from session_service.store.keys import Keys
from tests.conftest import create_session, make_settings, running_app, user
from tests.paging import all_messages
from tests.servers import RedisProcess, free_port
from tests.topology.servers import ClusterTopology, SentinelTopology, sentinel_topology

pytestmark = pytest.mark.slow

#: A request taking longer than this is a hung request: the test fails.
HUNG = 15.0


@dataclass
class AppendLoad:
    """Writers appending numbered messages to one session, recording every answer."""

    client: httpx.AsyncClient
    session_id: str
    acked: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    unavailable_without_retry_after: int = 0
    slowest: float = 0.0
    ack_times: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered)
    running: bool = True

    async def writer(self, name: str) -> None:
        n = 0
        while self.running:
            n += 1
            content = f"{name}-{n}"
            self.attempted.append(content)
            started = time.monotonic()
            async with asyncio.timeout(HUNG):
                response = await self.client.post(
                    f"/api/v1/sessions/{self.session_id}/messages",
                    json={"role": "user", "content": content},
                    headers=user(),
                )
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses.append(response.status_code)
            if response.status_code == 201:
                self.acked.append(content)
                self.ack_times.append((started, time.monotonic()))
            elif response.status_code == 503:
                body = response.json()
                if body["code"] != "storage_unavailable" or "Retry-After" not in response.headers:
                    self.unavailable_without_retry_after += 1
                await asyncio.sleep(0.05)

    async def acks_after(self, moment: float, count: int) -> float:
        """Wait for `count` acks of writes sent after `moment`; the delay of the first."""
        async with asyncio.timeout(30):
            while True:
                after = [answered for sent, answered in self.ack_times if sent > moment]
                if len(after) >= count:
                    return min(after) - moment
                await asyncio.sleep(0.02)


async def create_acked(client: httpx.AsyncClient) -> str:
    """A session whose create a replica confirmed. Right after a flush or a failover the
    replica can take longer than REDIS_REPLICA_ACK_TIMEOUT_MS on a busy machine: the
    503 says to retry with the same Idempotency-Key, as a client would."""
    headers = user(**{"Idempotency-Key": "first-session"})
    async with asyncio.timeout(30):
        while True:
            response = await client.post("/api/v1/sessions", json={}, headers=headers)
            if response.status_code in (200, 201):
                sid: str = response.json()["session_id"]
                return sid
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.05)


async def stored_contents(client: httpx.AsyncClient, session_id: str) -> list[str]:
    total, messages = await all_messages(client, session_id)
    assert total == len(messages), "message_count disagrees with the stream"
    return [m["content"] for m in messages]


async def run_load(load: AppendLoad, writers: int) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(load.writer(f"w{i}")) for i in range(writers)]
    async with asyncio.timeout(30):
        while True:
            if len(load.acked) >= 20:
                return tasks
            await asyncio.sleep(0.02)


async def stop_load(load: AppendLoad, tasks: list[asyncio.Task[None]]) -> None:
    load.running = False
    await asyncio.gather(*tasks)


def assert_no_acknowledged_write_lost(load: AppendLoad, stored: list[str]) -> None:
    assert set(load.statuses) <= {201, 503}, "only successes or 503 during an outage"
    assert load.unavailable_without_retry_after == 0
    assert len(stored) == len(set(stored)), "a message was stored twice"
    assert set(load.acked) <= set(stored), "an acknowledged message was lost"
    assert set(stored) <= set(load.attempted)


async def test_sentinel_failover_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    with sentinel_topology(tmp_path) as topology:
        settings = make_settings(
            None,
            redis_mode="sentinel",
            redis_sentinel_hosts=topology.hosts,
            redis_min_replicas_ack=1,
        )
        async with running_app(settings) as client:
            sid = await create_acked(client)
            load = AppendLoad(client, sid)
            tasks = await run_load(load, writers=4)
            old_master = topology.master
            old_port = old_master.port

            old_master.stop(hard=True)  # SIGKILL: no goodbye to anyone
            killed_at = time.monotonic()
            new_port = await asyncio.to_thread(topology.wait_promoted, old_port)
            promoted_after = time.monotonic() - killed_at
            # With REDIS_MIN_REPLICAS_ACK=1 the new master needs a replica before it
            # acknowledges writes again: the old master comes back as one (as its
            # config file, rewritten by Sentinel, would make it in production).
            old_master.extra += ["--replicaof", "127.0.0.1", str(new_port)]
            await asyncio.to_thread(old_master.start)
            resumed_after = await load.acks_after(killed_at, count=20)
            await stop_load(load, tasks)

            print(
                f"\nsentinel failover: replica promoted {promoted_after:.2f}s after SIGKILL of "
                f"the master; acknowledged writes resumed after {resumed_after:.2f}s "
                f"(REDIS_MIN_REPLICAS_ACK=1, old master restarted as replica); "
                f"{load.statuses.count(503)} x 503, slowest request {load.slowest:.2f}s"
            )
            assert_no_acknowledged_write_lost(load, await stored_contents(client, sid))
            assert await asyncio.to_thread(topology.master_port) == new_port


async def test_redis_restart_with_aof_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis", None, "--appendfsync", "always").start()
    try:
        async with running_app(make_settings(server.url)) as client:
            sid = (await create_session(client))["session_id"]
            load = AppendLoad(client, sid)
            tasks = await run_load(load, writers=4)

            server.stop(hard=True)
            stopped_at = time.monotonic()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.start)
            resumed_after = await load.acks_after(stopped_at, count=20)
            await stop_load(load, tasks)

            print(f"\nredis restart: writes succeeded again {resumed_after:.2f}s after SIGKILL")
            assert_no_acknowledged_write_lost(load, await stored_contents(client, sid))
            assert 503 in load.statuses  # the outage was seen, and answered correctly
    finally:
        server.stop()


async def test_redis_down_at_start_then_back_needs_no_restart(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path / "redis", free_port())
    try:
        async with running_app(make_settings(server.url)) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.headers["Retry-After"] == "1"
            assert ready.json()["status"] == "unavailable"
            refused = await client.post("/api/v1/sessions", json={}, headers=user())
            assert refused.status_code == 503
            assert refused.json()["code"] == "storage_unavailable"
            assert "Retry-After" in refused.headers

            await asyncio.to_thread(server.start)

            assert (await client.get("/ready")).status_code == 200
            created = await create_session(client, title="after the outage")
            got = await client.get(f"/api/v1/sessions/{created['session_id']}", headers=user())
            assert got.json()["title"] == "after the outage"
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["sentinel", "cluster"])
async def test_unreachable_sentinel_or_cluster_at_start_answers_503(mode: str) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    settings = make_settings(
        None,
        redis_mode=mode,
        redis_sentinel_hosts=nowhere if mode == "sentinel" else "",
        redis_cluster_nodes=nowhere if mode == "cluster" else "",
    )
    async with running_app(settings) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        refused = await client.post("/api/v1/sessions", json={}, headers=user())
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "storage_unavailable"
        assert refused.headers["Retry-After"] == "1"
        listed = await client.get("/api/v1/sessions", headers=user())
        assert listed.status_code == 503, listed.text


async def test_cluster_failover_is_followed_without_losing_acknowledged_messages(
    cluster: ClusterTopology,
) -> None:
    await asyncio.to_thread(cluster.flush)
    settings = make_settings(
        None, redis_mode="cluster", redis_cluster_nodes=cluster.seeds, redis_min_replicas_ack=1
    )
    async with running_app(settings) as client:
        sid = await create_acked(client)
        primary, replica = cluster.shard_of(Keys("fms").base("u1"))
        load = AppendLoad(client, sid)
        tasks = await run_load(load, writers=4)

        promoted_at = time.monotonic()
        await asyncio.to_thread(cluster.promote, replica)
        resumed_after = await load.acks_after(promoted_at, count=20)
        await stop_load(load, tasks)

        print(
            f"\ncluster failover: {replica} took over from {primary}; acknowledged writes "
            f"resumed {resumed_after:.2f}s after CLUSTER FAILOVER; "
            f"{load.statuses.count(503)} x 503, slowest request {load.slowest:.2f}s"
        )
        assert_no_acknowledged_write_lost(load, await stored_contents(client, sid))
        assert cluster.shard_of(Keys("fms").base("u1")) == (replica, primary)
    await asyncio.to_thread(cluster.wait_healthy, 3)


async def test_cluster_slot_migration_under_load_loses_and_duplicates_nothing(
    cluster: ClusterTopology,
) -> None:
    await asyncio.to_thread(cluster.flush)
    settings = make_settings(None, redis_mode="cluster", redis_cluster_nodes=cluster.seeds)
    base = Keys("fms").base("u1")
    async with running_app(settings) as client:
        sid = (await create_session(client))["session_id"]
        for n in range(50):  # keys enough for several MIGRATE batches
            await create_session(client, title=f"filler {n}")
        source, _ = cluster.shard_of(base)
        target = next(port for port in cluster.primaries() if port != source)
        load = AppendLoad(client, sid)
        tasks = await run_load(load, writers=4)

        moved_at = time.monotonic()
        await asyncio.to_thread(cluster.move_slot_of, base, target)
        moved_after = time.monotonic() - moved_at
        resumed_after = await load.acks_after(moved_at + moved_after, count=20)
        await stop_load(load, tasks)

        print(
            f"\ncluster slot migration: took {moved_after:.2f}s; "
            f"{load.statuses.count(503)} x 503 meanwhile, writes succeeded {resumed_after:.2f}s "
            f"after it; slowest request {load.slowest:.2f}s"
        )
        assert cluster.shard_of(base)[0] == target
        assert_no_acknowledged_write_lost(load, await stored_contents(client, sid))
        listed = (await client.get("/api/v1/sessions?limit=100", headers=user())).json()
        assert listed["total"] == 51


async def test_without_its_replica_a_write_answers_503_and_a_retry_does_not_duplicate(
    sentinel: SentinelTopology,
) -> None:
    settings = make_settings(
        None, redis_mode="sentinel", redis_sentinel_hosts=sentinel.hosts, redis_min_replicas_ack=1
    )
    async with running_app(settings) as client:
        sid = await create_acked(client)
        append = {"role": "user", "content": "unconfirmed"}
        retry = user(**{"Idempotency-Key": "append-1"})
        replica = sentinel.replicas[0]

        replica.stop(hard=True)
        try:
            refused = await client.post(
                f"/api/v1/sessions/{sid}/messages", json=append, headers=retry
            )
            assert refused.status_code == 503
            assert refused.json()["code"] == "storage_unavailable"
            assert "may not survive a failover" in refused.json()["detail"]
            # Reads, listing and search do not wait for replicas.
            assert (await client.get(f"/api/v1/sessions/{sid}", headers=user())).status_code == 200
            assert (await client.get("/api/v1/sessions", headers=user())).status_code == 200
            found = await client.post("/api/v1/sessions/search", json={}, headers=user())
            assert found.status_code == 200
        finally:
            await asyncio.to_thread(replica.start)
            await asyncio.to_thread(sentinel.wait_healthy)

        # The replica is back, but on a busy machine its acknowledgement can take longer
        # than the 500 ms this app waits for it: a refused retry is retried with the same
        # key, as its answer says, and the message is still stored once.
        deadline = time.monotonic() + 60
        while True:
            retried = await client.post(
                f"/api/v1/sessions/{sid}/messages", json=append, headers=retry
            )
            if retried.status_code != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert retried.status_code in (200, 201), retried.text
        assert await stored_contents(client, sid) == ["unconfirmed"]
