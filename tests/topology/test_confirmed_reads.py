"""REDIS_CONFIRMED_READS on Sentinel and Cluster: every answer waits for a replica.

The failover case (a read that would show a write the failover loses answers 503)
is in tests/model/test_found_defects.py. Here: with healthy replicas every kind of
answer still works, each costs exactly one WAIT (a write's own WAIT confirms its
answer, so it is not confirmed twice), a read's WAIT goes to the user's own node on
Cluster, and a change-feed stream confirms what it delivers.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import make_settings, running_app, user
from tests.feed import Watch, serve
from tests.helpers import API
from tests.topology.conftest import Topology, _topology
from tests.topology.servers import SentinelTopology


@pytest.fixture(params=("sentinel", "cluster"))
async def replicated(request: pytest.FixtureRequest) -> Topology:
    chosen = _topology(request.param, request)
    await chosen.flush()
    return chosen


def confirmed(topology: Topology) -> dict[str, Any]:
    """The topology's settings (no REDIS_URL: the nodes are named), reads confirmed."""
    settings = {k: v for k, v in topology.settings.items() if k != "redis_url"}
    return {**settings, "redis_confirmed_reads": True}


async def wait_calls(topology: Topology) -> int:
    """WAIT commands served by every primary since the last reset."""
    total = 0
    for url in topology.primaries():
        async with Redis.from_url(url) as client:
            stats = await client.info("commandstats")
            total += int(stats.get("cmdstat_wait", {}).get("calls", 0))
    return total


async def reset_stats(topology: Topology) -> None:
    for url in topology.primaries():
        async with Redis.from_url(url) as client:
            await client.config_resetstat()


async def test_every_answer_is_confirmed_by_exactly_one_wait(replicated: Topology) -> None:
    settings = make_settings(None, **confirmed(replicated))
    async with running_app(settings) as client:
        # Several users: on Cluster they live on different shards, so a barrier sent to
        # any node but the user's own would be MOVED and the read would fail.
        for who in ("ana", "bo", "cy", "di"):
            headers = user(who)
            created = await client.post(API, json={"title": "t"}, headers=headers)
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
            # Once, so the script is in the server's cache: a first EVALSHA that finds no
            # script is sent again with its WAIT, which would count twice.
            await client.post(
                f"{API}/{sid}/messages", json={"role": "user", "content": "-"}, headers=headers
            )
            await reset_stats(replicated)
            appended = await client.post(
                f"{API}/{sid}/messages", json={"role": "user", "content": "hi"}, headers=headers
            )
            assert appended.status_code == 201, appended.text
            assert await wait_calls(replicated) == 1  # the write's WAIT, nothing more
            reads = [
                ("GET", f"{API}/{sid}", None),
                ("HEAD", f"{API}/{sid}", None),
                ("GET", f"{API}/{sid}/messages", None),
                ("GET", f"{API}/{sid}/stats", None),
                ("GET", API, None),
                ("POST", f"{API}/search", {"query": "t"}),
                ("GET", f"{API}/{sid}/events", None),
            ]
            for n, (method, path, body) in enumerate(reads, start=2):
                answer = await client.request(
                    method, path, json=body, headers=user(who, Accept="application/json")
                )
                assert answer.status_code == 200, (path, answer.text)
                assert await wait_calls(replicated) == n, path
            missing = await client.get(f"{API}/sess_{'0' * 32}", headers=headers)
            assert missing.status_code == 404  # a 404 shows state too: it is confirmed
            assert await wait_calls(replicated) == len(reads) + 2


async def test_a_refused_write_is_confirmed_by_its_own_wait(replicated: Topology) -> None:
    async with running_app(make_settings(None, **confirmed(replicated))) as client:
        created = await client.post(API, json={}, headers=user())
        sid = created.json()["session_id"]
        await client.patch(f"{API}/{sid}", json={"title": "warm"}, headers=user())
        await reset_stats(replicated)
        stale = await client.patch(
            f"{API}/{sid}", json={"title": "x"}, headers=user(**{"If-Match": '"stale"'})
        )
        assert stale.status_code == 412, stale.text
        assert await wait_calls(replicated) == 1


def test_a_stream_confirms_what_it_delivers(replicated: Topology) -> None:
    # Short heartbeats: their chunks are confirmed too, and a closed stream is noticed soon.
    settings = {**confirmed(replicated), "events_heartbeat_seconds": 0.3}
    with (
        serve(None, **settings) as served,  # type: ignore[arg-type]
        httpx.Client(base_url=served.url, headers=user(), timeout=60) as client,
    ):
        sid = client.post(API, json={}).json()["session_id"]
        watch = Watch(served.url, sid)
        try:
            assert watch.take({"session"}, 1)
            sent = [
                client.post(
                    f"{API}/{sid}/messages", json={"role": "user", "content": f"m{i}"}
                ).json()["message"]["message_id"]
                for i in range(3)
            ]
            assert [e.id for e in watch.take({"message"}, 3)] == sent
            assert watch.next(skip=()) is not None  # a heartbeat, confirmed, arrives
        finally:
            watch.close()


def test_confirmed_reads_need_replicas_to_wait_for() -> None:
    with pytest.raises(ValueError, match="REDIS_CONFIRMED_READS needs REDIS_MIN_REPLICAS_ACK"):
        make_settings("redis://127.0.0.1:6379/0", redis_confirmed_reads=True)


async def test_reads_stay_confirmed_when_redis_is_out_of_memory(replicated: Topology) -> None:
    """The barrier stores nothing (SPUBLISH), so a full Redis refuses writes, not reads."""
    async with running_app(make_settings(None, **confirmed(replicated))) as client:
        sid = (await client.post(API, json={}, headers=user())).json()["session_id"]
        try:
            for url in replicated.primaries():
                async with Redis.from_url(url) as node:
                    await node.config_set("maxmemory", 1)
            read = await client.get(f"{API}/{sid}", headers=user())
            assert read.status_code == 200, read.text
            refused = await client.patch(f"{API}/{sid}", json={"title": "x"}, headers=user())
            assert refused.status_code == 507, refused.text  # the write is what is refused
        finally:
            for url in replicated.primaries():
                async with Redis.from_url(url) as node:
                    await node.config_set("maxmemory", 0)


async def test_bad_input_is_a_4xx_while_no_replica_confirms(sentinel: SentinelTopology) -> None:
    """An answer that read nothing needs no confirmation: a refused body stays a 422 and
    an unknown route a 404 while the replica is stopped; a read is a 503 then (so is a
    refused body on a session's route: whether the session exists is read first)."""
    settings = make_settings(
        None,
        redis_mode="sentinel",
        redis_sentinel_hosts=sentinel.hosts,
        redis_min_replicas_ack=1,
        redis_replica_ack_timeout_ms=300,
        redis_confirmed_reads=True,
    )
    async with running_app(settings) as client:
        sid = (await client.post(API, json={}, headers=user())).json()["session_id"]
        master = sentinel.master_port()
        replica = next(p for p in [sentinel.master, *sentinel.replicas] if p.port != master)
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            bad = await client.post(API, json={"timeout_minutes": "soon"}, headers=user())
            assert bad.status_code == 422, bad.text
            unknown = await client.get(f"{API}/{sid}/nothing-here", headers=user())
            assert unknown.status_code == 404, unknown.text
            read = await client.get(f"{API}/{sid}", headers=user())
            assert read.status_code == 503, read.text
            assert read.json()["code"] == "storage_unavailable"
            assert read.headers["retry-after"]
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        sentinel.wait_healthy(timeout=90)
