"""Defects the model checker found that no issue lists yet, as regression tests (an
open one would be a strict xfail).

Each test reproduces, step by step and without timing luck, the minimal history the
checker printed; `strict=True` makes the test fail the day the defect is fixed, so the
fix removes the marker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from session_service.store import branches
from tests.conftest import ClientFactory, make_settings, running_app, user
from tests.helpers import API, next_millisecond
from tests.topology.servers import sentinel_topology, sync_client

pytestmark = pytest.mark.slow


async def _append_until_acknowledged(client: httpx.AsyncClient, sid: str, content: str) -> str:
    """The new master acknowledges writes once a replica is back; one key, so no twin."""
    headers = user(**{"Idempotency-Key": f"append-{content}"})
    deadline = time.monotonic() + 60
    while True:
        response = await client.post(
            f"{API}/{sid}/messages", json={"role": "user", "content": content}, headers=headers
        )
        if response.status_code == 201 or time.monotonic() > deadline:
            assert response.status_code == 201, response.text
            message_id: str = response.json()["message"]["message_id"]
            return message_id
        await asyncio.sleep(0.2)


async def _lose_an_unconfirmed_append(
    tmp_path: Path, confirmed_reads: bool
) -> tuple[list[tuple[str, str]], int, str, list[tuple[str, str]]]:
    """The minimal history of Sentinel soak seed 305 (`id-reused`), step by step.

    An append no replica confirms (503), a read while it is on the master alone, a
    failover that loses it, and a second append. Answers (what the read showed, the
    read's status, the second append's id, what a read shows at the end).
    """
    with sentinel_topology(tmp_path) as topology:
        settings = make_settings(
            None,
            redis_mode="sentinel",
            redis_sentinel_hosts=topology.hosts,
            redis_min_replicas_ack=1,
            redis_replica_ack_timeout_ms=300,
            redis_timeout_seconds=10.0,
            redis_confirmed_reads=confirmed_reads,
        )
        async with running_app(settings) as client:
            created = await client.post(API, json={"timeout_minutes": 60}, headers=user())
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
            master, replica = topology.master, topology.replicas[0]
            assert master.process is not None and replica.process is not None

            # The replica stops, then loses its link: nothing written from now on reaches it.
            os.kill(replica.process.pid, signal.SIGSTOP)
            try:
                with sync_client(master.port) as admin:
                    admin.execute_command("CLIENT", "KILL", "TYPE", "replica")
                first = await client.post(
                    f"{API}/{sid}/messages", json={"role": "user", "content": "A"}, headers=user()
                )
                assert first.status_code == 503, first.text  # not acknowledged: may be lost
                seen = await client.get(f"{API}/{sid}/messages", headers=user())
                shown = [(m["message_id"], m["content"]) for m in seen.json().get("messages", [])]
                old_port = master.port
                master.stop(hard=True)
            finally:
                os.kill(replica.process.pid, signal.SIGCONT)

            new_port = await asyncio.to_thread(topology.wait_promoted, old_port)
            master.extra += ["--replicaof", "127.0.0.1", str(new_port)]
            await asyncio.to_thread(master.start)
            second = await _append_until_acknowledged(client, sid, "B")
            final = await client.get(f"{API}/{sid}/messages", headers=user())
            assert final.status_code == 200, final.text
            after = [(m["message_id"], m["content"]) for m in final.json()["messages"]]
            return shown, seen.status_code, second, after


async def test_a_confirmed_read_never_shows_an_id_a_failover_gives_to_another_message(
    tmp_path: Path,
) -> None:
    """Fixed (REDIS_CONFIRMED_READS): the read waits for the replica, which never got
    A, so it answers 503 instead of showing msg_0000000001 as A. The failover loses A,
    B takes msg_0000000001, and no reader ever saw that id name anything else."""
    shown, status, second, after = await _lose_an_unconfirmed_append(tmp_path, True)
    assert (status, shown) == (503, [])
    assert after == [(second, "B")]


async def test_without_confirmed_reads_a_read_may_show_a_write_a_failover_loses(
    tmp_path: Path,
) -> None:
    """The documented default (docs/redis-modes.md): reads do not wait for replicas,
    so they keep working while one is down, and may show an unacknowledged write
    that a failover then loses; its id can then name another message."""
    shown, status, second, after = await _lose_an_unconfirmed_append(tmp_path, False)
    assert (status, shown) == (200, [("msg_0000000001", "A")])
    assert (second, after) == ("msg_0000000001", [("msg_0000000001", "B")])


async def test_a_failover_between_a_read_and_its_confirmation_answers_503(
    tmp_path: Path,
) -> None:
    """Review of the fix above: the read runs on the old master and shows A; its
    confirmation is held (a gate in front of `confirm_reads`, nothing below it is
    replaced) until the failover is over, and then reaches the new master, whose
    replica would confirm it. The answer was read elsewhere, so it is a 503."""
    with sentinel_topology(tmp_path) as topology:
        settings = make_settings(
            None,
            redis_mode="sentinel",
            redis_sentinel_hosts=topology.hosts,
            redis_min_replicas_ack=1,
            redis_replica_ack_timeout_ms=300,
            redis_timeout_seconds=10.0,
            redis_confirmed_reads=True,
        )
        async with running_app(settings) as client:
            created = await client.post(API, json={"timeout_minutes": 60}, headers=user())
            assert created.status_code == 201, created.text
            sid = created.json()["session_id"]
            master, replica = topology.master, topology.replicas[0]
            assert master.process is not None and replica.process is not None
            store: Any = client.app.state.store  # type: ignore[attr-defined]
            original = store.confirm_reads
            reached, release = asyncio.Event(), asyncio.Event()

            async def gated(user_id: str) -> None:
                reached.set()
                await release.wait()
                await original(user_id)

            os.kill(replica.process.pid, signal.SIGSTOP)
            try:
                with sync_client(master.port) as admin:
                    admin.execute_command("CLIENT", "KILL", "TYPE", "replica")
                first = await client.post(
                    f"{API}/{sid}/messages", json={"role": "user", "content": "A"}, headers=user()
                )
                assert first.status_code == 503, first.text
                store.confirm_reads = gated
                read = asyncio.create_task(client.get(f"{API}/{sid}/messages", headers=user()))
                await asyncio.wait_for(reached.wait(), 30)  # the read is done, barrier pending
                old_port = master.port
                master.stop(hard=True)
            finally:
                os.kill(replica.process.pid, signal.SIGCONT)
            new_port = await asyncio.to_thread(topology.wait_promoted, old_port)
            master.extra += ["--replicaof", "127.0.0.1", str(new_port)]
            await asyncio.to_thread(master.start)
            for _ in range(300):  # the restarted node is the new master's replica
                with sync_client(new_port) as promoted:
                    if int(promoted.info("replication").get("connected_slaves", 0)) >= 1:
                        break
                await asyncio.sleep(0.1)
            release.set()
            seen = await read
            store.confirm_reads = original
            shown = [(m["message_id"], m["content"]) for m in seen.json().get("messages", [])]
            second = await _append_until_acknowledged(client, sid, "B")
            final = await client.get(f"{API}/{sid}/messages", headers=user())
            after = [(m["message_id"], m["content"]) for m in final.json()["messages"]]
            assert (seen.status_code, shown) == (503, []), seen.text
            assert after == [(second, "B")]


async def test_an_erase_spares_the_messages_a_concurrent_rewind_keeps(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(branches, "INLINE_MAX", 1)  # the rewind below is staged
    copied, swap, sweep = asyncio.Event(), asyncio.Event(), asyncio.Event()
    copy = branches._copy

    async def copy_then_wait(*args: Any) -> Any:
        result = await copy(*args)
        copied.set()
        await swap.wait()
        return result

    monkeypatch.setattr(branches, "_copy", copy_then_wait)
    async with make_client() as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        scan = store._scan

        async def scan_when_told(pattern: str) -> Any:
            await sweep.wait()
            async for key in scan(pattern):
                yield key

        store._scan = scan_when_told
        sliced = asyncio.Event()

        class EraseThenTell:
            """The erase script, which tells the test once a slice fixed the cutoff."""

            def __init__(self, script: Any) -> None:
                self.script = script

            def __getattr__(self, name: str) -> Any:
                return getattr(self.script, name)

            async def __call__(self, *args: Any) -> Any:
                reply = await self.script(*args)
                sliced.set()
                return reply

        monkeypatch.setattr(store.scripts, "erase", EraseThenTell(store.scripts.erase))
        admin = {"X-User-ID": "admin", "X-User-Roles": "admin"}
        # The erase fixes its cutoff and drops what exists (nothing), then waits to sweep.
        erase = asyncio.create_task(client.delete("/api/v1/users/u1/sessions", headers=admin))
        await sliced.wait()  # its cutoff is fixed: the session below is created after it
        await next_millisecond(store.client)  # (not in the cutoff's own millisecond)
        created = await client.post(API, json={"timeout_minutes": 60}, headers=user())
        sid = created.json()["session_id"]
        for content in ("kept", "b", "c", "d"):
            appended = await client.post(
                f"{API}/{sid}/messages", json={"role": "user", "content": content}, headers=user()
            )
            assert appended.status_code == 201, appended.text
        rewind = asyncio.create_task(
            client.post(f"{API}/{sid}/rewind", json={"to_message_id": "msg_0000000001"},
                        headers=user())
        )  # fmt: skip
        await copied.wait()  # the rewind's copy is staged, not yet swapped in
        sweep.set()
        assert (await erase).status_code == 200
        swap.set()
        assert (await rewind).status_code == 200, (await rewind).text
        page = await client.get(f"{API}/{sid}/messages", headers=user())
        assert page.status_code == 200
        shown = [m["content"] for m in page.json()["messages"]]
        assert page.json()["total"] == 1
        assert shown == ["kept"], f"the rewind kept msg_0000000001, the reader sees {shown}"
