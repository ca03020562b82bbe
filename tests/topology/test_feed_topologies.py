"""The change feed on standalone, Sentinel and Cluster, and through a Sentinel failover.

Notifications are PUBLISHed by the writing scripts and each worker holds one
subscription: on every topology a change made through one instance must wake a
watcher held by another. A failover drops the subscription; a stream held across
it must still deliver every stored message once, in order.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ClientFactory, create_session, user
from tests.feed import Watch, serve, until, wakes_across_instances
from tests.topology.servers import sentinel_topology


async def test_a_change_through_one_instance_wakes_a_watcher_on_another(
    make_app: ClientFactory,
) -> None:
    async with make_app() as one, make_app() as two:
        await wakes_across_instances(one, two)


def test_a_stream_held_through_a_sentinel_failover_misses_nothing(tmp_path: Path) -> None:
    with sentinel_topology(tmp_path) as topology:
        settings: dict[str, Any] = {
            "redis_mode": "sentinel",
            "redis_sentinel_hosts": topology.hosts,
            "redis_min_replicas_ack": 1,
            "redis_replica_ack_timeout_ms": 10_000,
            "redis_timeout_seconds": 2.0,
        }
        with serve(None, **settings) as served:  # type: ignore[arg-type]
            client = httpx.Client(base_url=served.url, headers=user(), timeout=60)
            sid = _create(client)
            watch = Watch(served.url, sid)
            acked: list[str] = []
            running = True

            def write() -> None:
                with httpx.Client(base_url=served.url, headers=user(), timeout=60) as writer:
                    i = 0
                    while running:
                        i += 1
                        response = writer.post(
                            f"/api/v1/sessions/{sid}/messages",
                            json={"role": "user", "content": f"m{i}"},
                        )
                        if response.status_code == 201:
                            acked.append(response.json()["message"]["message_id"])
                        else:
                            assert response.status_code == 503, response.text
                            time.sleep(0.05)

            writer = threading.Thread(target=write)
            try:
                assert watch.take({"session"}, 1)
                writer.start()
                until(lambda: len(acked) >= 20, what="writes before the failover")
                old = topology.master
                old.stop(hard=True)
                new_port = topology.wait_promoted(old.port)
                old.extra += ["--replicaof", "127.0.0.1", str(new_port)]
                old.start()
                before = len(acked)
                until(lambda: len(acked) >= before + 20, what="writes after the failover")
                running = False
                writer.join(60)
                stored = _stored_ids(client, sid)
                got = [e.id for e in watch.take({"message"}, len(stored), within=120)]
                assert got == stored  # the same stream: no gap, no duplicate
                assert set(acked) <= set(stored)
            finally:
                running = False
                writer.join(60) if writer.is_alive() else None
                watch.close()
                client.close()


def _create(client: httpx.Client) -> str:
    deadline = time.monotonic() + 30
    while True:
        response = client.post("/api/v1/sessions", json={})
        if response.status_code == 201:
            sid: str = response.json()["session_id"]
            return sid
        assert response.status_code == 503 and time.monotonic() < deadline, response.text
        time.sleep(0.05)


def _stored_ids(client: httpx.Client, sid: str) -> list[str]:
    ids: list[str] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    while True:
        page = client.get(f"/api/v1/sessions/{sid}/messages", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [m["message_id"] for m in body["messages"]]
        if not body["has_more"]:
            return ids
        params["after"] = ids[-1]


async def test_reads_of_watchers_woken_together_share_a_pipeline(app: httpx.AsyncClient) -> None:
    """The hub's batched reads answer what each read alone would, across users (on
    Cluster: across slots and nodes), and a gone session reads as None."""
    store = app.app.state.store  # type: ignore[attr-defined]
    reads = []
    for index in range(6):
        owner = f"user-{index}"
        sid = (await create_session(app, owner))["session_id"]
        for content in ("a", "b", "c"):
            appended = await app.post(
                f"/api/v1/sessions/{sid}/messages", json={"role": "user", "content": content},
                headers=user(owner),
            )  # fmt: skip
            assert appended.status_code == 201, appended.text
        reads.append((owner, sid, index % 3, 100))
    reads.append(("user-0", "sess_" + "0" * 32, 0, 100))
    together = await store.feed_states(reads)
    alone = [await store.feed_state(*read) for read in reads]
    assert together == alone
    assert together[-1] is None
    assert [len(state.messages) for state in together[:-1]] == [3, 2, 1, 3, 2, 1]
