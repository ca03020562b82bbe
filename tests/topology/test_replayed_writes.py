"""A replayed write is acknowledged only once a replica holds the original (issue 20, 2).

With REDIS_MIN_REPLICAS_ACK=1 a write that no replica confirmed answers 503 and
asks for a retry with the same Idempotency-Key. The retry finds the idempotency
record and replays the original answer; it must not answer 2xx until a replica
holds the original write. WAIT alone proves nothing here: it counts only the
writes of its own connection, and a replay through another instance has written
nothing on its.

Each test owns a primary and a replica (the replica is stopped with SIGSTOP, so
the primary still counts it connected but it confirms nothing). Instance A talks
to the primary through a proxy that holds the operation's final script until the
replica is stopped, so the operation is applied and not confirmed; instance B
retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from session_service.store.scripts import load_scripts
from tests.conftest import create_session, make_settings, running_app, user
from tests.helpers import API
from tests.proxy import FaultProxy
from tests.servers import RedisProcess
from tests.topology.servers import FAST_SYNC, sync_client, wait_until

pytestmark = pytest.mark.slow

KEY = {"Idempotency-Key": "the-only-one"}


@dataclass
class Pair:
    primary: RedisProcess
    replica: RedisProcess

    def stop_replica(self) -> None:
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGSTOP)

    def resume_replica(self) -> None:
        assert self.replica.process is not None
        self.replica.process.send_signal(signal.SIGCONT)


def _replica_online(primary: redis.Redis) -> bool:
    replication = primary.info("replication")
    return any(
        isinstance(value, dict) and value.get("state") == "online"
        for name, value in replication.items()
        if name.startswith("slave")
    )


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    # A stopped replica stays "online" for the primary until repl-timeout: make that
    # longer than any test, so the replica is connected and silent, as a lagging one is.
    primary = RedisProcess(tmp_path / "primary", None, *FAST_SYNC, "--repl-timeout", "3600")
    replica = RedisProcess(
        tmp_path / "replica", None, "--replicaof", "127.0.0.1", str(primary.port), *FAST_SYNC
    )
    try:
        primary.start()
        replica.start()
        with sync_client(primary.port) as client:
            wait_until(lambda: _replica_online(client), "the replica to sync")
        yield Pair(primary, replica)
    finally:
        if replica.process is not None:
            replica.process.send_signal(signal.SIGCONT)
        replica.stop(hard=True)
        primary.stop(hard=True)


@contextlib.asynccontextmanager
async def instance(url: str, ack_timeout_ms: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        url, redis_min_replicas_ack=1, redis_replica_ack_timeout_ms=ack_timeout_ms
    )
    async with running_app(settings) as client:
        yield client


@dataclass
class Operation:
    """A keyed write, the final script it runs, and how many times it is stored."""

    script: str
    prepare: Callable[[httpx.AsyncClient], Awaitable[str]]
    send: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
    stored: Callable[[httpx.AsyncClient, str], Awaitable[int]]
    identity: Callable[[dict[str, Any]], str]


async def _none(client: httpx.AsyncClient) -> str:
    return ""


async def _session(client: httpx.AsyncClient) -> str:
    sid: str = (await create_session(client))["session_id"]
    return sid


async def _conversation(client: httpx.AsyncClient) -> str:
    sid = await _session(client)
    body = {"role": "user", "content": "the pool is exhausted"}
    appended = await client.post(f"{API}/{sid}/messages", json=body, headers=user())
    assert appended.status_code == 201, appended.text
    return sid


async def _json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path, headers=user())
    assert response.status_code == 200, response.text
    return response.json()


async def _sessions(client: httpx.AsyncClient, _: str) -> int:
    total: int = (await _json(client, f"{API}?limit=100"))["total"]
    return total


async def _messages(client: httpx.AsyncClient, sid: str) -> int:
    return int((await _json(client, f"{API}/{sid}"))["message_count"])


async def _pairs(client: httpx.AsyncClient, sid: str) -> int:
    """Batches of two messages stored (nothing else appends in the test)."""
    return await _messages(client, sid) // 2


async def _summaries(client: httpx.AsyncClient, sid: str) -> int:
    return len((await _json(client, f"{API}/{sid}/summaries"))["summaries"])


def _post(path: str, body: dict[str, Any]) -> Callable[..., Awaitable[httpx.Response]]:
    async def send(client: httpx.AsyncClient, sid: str) -> httpx.Response:
        return await client.post(path.format(sid=sid), json=body, headers=user(**KEY))

    return send


OPERATIONS = {
    "create": Operation(
        "create", _none, _post(API, {"title": "replayed"}), _sessions,
        lambda body: str(body["session_id"]),
    ),
    "append": Operation(
        "append", _session, _post(API + "/{sid}/messages", {"role": "user", "content": "hi"}),
        _messages, lambda body: str(body["message"]["message_id"]),
    ),
    "batch": Operation(
        "append_batch", _session,
        _post(API + "/{sid}/messages/batch", {"messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        ]}),
        _pairs, lambda body: str(body["messages"][0]["message_id"]),
    ),
    "summary": Operation(
        "summarize", _conversation,
        _post(API + "/{sid}/summaries", {"content": "raised max_connections",
                                         "covers_through": "msg_0000000001"}),
        _summaries, lambda body: str(body["summary_id"]),
    ),
    "fork": Operation(
        "fork", _conversation, _post(API + "/{sid}/fork", {"title": "try b"}),
        lambda client, sid: _sessions(client, sid), lambda body: str(body["session_id"]),
    ),
}  # fmt: skip


async def _applied_unconfirmed(
    proxy: FaultProxy, pair: Pair, client: httpx.AsyncClient, op: Operation, state: str
) -> None:
    """Send the operation through instance A; stop the replica just before its
    final script reaches the primary, so the write is applied and never confirmed."""
    sha = load_scripts().by_name[op.script].sha.encode()
    proxy.hold = lambda chunk: sha in chunk
    sent = asyncio.create_task(op.send(client, state))
    async with asyncio.timeout(60):
        await proxy.held.wait()
    await asyncio.to_thread(pair.stop_replica)
    proxy.release()
    refused = await sent
    assert refused.status_code == 503, refused.text
    assert "may not survive a failover" in refused.json()["detail"]


async def _once_confirmed(op: Operation, client: httpx.AsyncClient, state: str) -> httpx.Response:
    """Retry as a client would until the replica, resumed, confirms (a 503 meanwhile)."""
    async with asyncio.timeout(60):
        while True:
            response = await op.send(client, state)
            if response.status_code != 503:
                return response
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_a_replay_answers_2xx_only_once_a_replica_holds_the_original(
    pair: Pair, name: str
) -> None:
    op = OPERATIONS[name]
    proxy = await FaultProxy(pair.primary.port).start()
    try:
        async with (
            instance(proxy.url, ack_timeout_ms=500) as a,
            instance(pair.primary.url, ack_timeout_ms=2000) as b,
        ):
            state = await op.prepare(b)
            before = await op.stored(b, state)
            await _applied_unconfirmed(proxy, pair, a, op, state)
            assert await op.stored(b, state) == before + 1  # applied on the primary

            replayed = await op.send(b, state)
            assert replayed.status_code == 503, (
                f"a replay answered {replayed.status_code} while no replica holds the "
                f"original {name}: {replayed.text}"
            )
            assert replayed.json()["code"] == "storage_unavailable"
            assert replayed.headers["Retry-After"]

            await asyncio.to_thread(pair.resume_replica)
            confirmed = await _once_confirmed(op, b, state)
            assert confirmed.status_code in (200, 201), confirmed.text
            again = await op.send(a, state)
            assert again.status_code == confirmed.status_code, again.text
            assert op.identity(again.json()) == op.identity(confirmed.json())
            assert await op.stored(b, state) == before + 1  # stored once
    finally:
        await proxy.stop()
