"""Exactly once, end to end: a real TCP proxy between the client and the service loses
replies *after* the service has handled the request (dropped, reset mid-stream, stalled
past the client's timeout, or replaced by a gateway's 502/503/504). The client retries
with the same Idempotency-Key; afterwards every write is stored, and stored once.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from fm_session_client import AsyncSessionClient, RetryPolicy, SessionClient, errors
from fm_session_client.models import MessageCreate
from tests.ops.service import ServiceProcess
from tests.proxy import FaultProxy

#: Fault kinds and their weights: stalls cost a read timeout each, so they are rarer.
WEIGHTS = {"drop": 30, "reset": 20, "http_502": 15, "http_504": 15, "stall": 8, "http_503": 4}
#: Short per-attempt timeouts (a stall ends there), a deadline far beyond any backoff.
POLICY = RetryPolicy(deadline=120.0, read_timeout=3.0, connect_timeout=3.0, backoff_max=0.2)


def post_faults(seed: int, rate: float) -> Callable[[bytes], str | None]:
    """Fault the reply of a share `rate` of the POST requests, picking the kind by weight."""
    rng = random.Random(seed)
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())

    def choose(chunk: bytes) -> str | None:
        if not chunk.startswith(b"POST "):
            return None
        return rng.choices(kinds, weights)[0] if rng.random() < rate else None

    return choose


class Ledger:
    """What the client was told was stored, to compare with what is."""

    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.messages: dict[str, list[str]] = {}
        self.summaries: dict[str, int] = Counter()
        self.operations = 0


async def worker(client: AsyncSessionClient, ledger: Ledger, worker_no: int, ops: int) -> None:
    """One session per worker, written in order: create, then appends, batches, summaries."""
    created = await client.create_session(title=f"worker {worker_no}")
    sid = created.session_id
    ledger.sessions.append(sid)
    ledger.messages[sid] = []
    ledger.operations += 1
    for n in range(1, ops):
        kind = n % 5
        if kind == 3:
            texts = [f"w{worker_no} batch {n}.{i}" for i in range(3)]
            stored = await client.append_batch(
                sid, [MessageCreate(role="user", content=text) for text in texts]
            )
            assert [m.content for m in stored.messages] == texts
            ledger.messages[sid] += texts
        elif kind == 4:
            last = f"msg_{len(ledger.messages[sid]):010d}"
            summary = await client.create_summary(sid, f"w{worker_no} summary {n}", last)
            assert summary.covers_through == last
            ledger.summaries[sid] += 1
        else:
            text = f"w{worker_no} message {n}"
            appended = await client.append(sid, "user", text)
            assert appended.message.content == text
            assert appended.total_messages == len(ledger.messages[sid]) + 1
            ledger.messages[sid].append(text)
        ledger.operations += 1


def verify(client: SessionClient, ledger: Ledger) -> tuple[int, int]:
    """(lost, duplicated) over sessions, messages and summaries, read around the proxy."""
    stored_sessions = Counter(s.session_id for s in client.iter_sessions())
    lost = sum(1 for sid in ledger.sessions if sid not in stored_sessions)
    duplicated = sum(stored_sessions.values()) - len(ledger.sessions)
    for sid, expected in ledger.messages.items():
        stored = Counter(m.content for m in client.iter_messages(sid, page_size=200))
        lost += sum(1 for text in expected if text not in stored)
        duplicated += sum(count - 1 for count in stored.values())
        duplicated += sum(1 for text in stored if text not in expected)
        summaries = list(client.iter_summaries(sid))
        lost += max(ledger.summaries[sid] - len(summaries), 0)
        duplicated += max(len(summaries) - ledger.summaries[sid], 0)
    return lost, duplicated


def in_order(client: SessionClient, ledger: Ledger) -> bool:
    return all(
        [m.content for m in client.iter_messages(sid, page_size=200)] == expected
        for sid, expected in ledger.messages.items()
    )


@pytest.mark.slow
@pytest.mark.timeout(900)  # bounded by the operations, not by time: a loaded machine is slower
async def test_lost_replies_lose_and_duplicate_nothing(
    service: ServiceProcess, user_id: str
) -> None:
    proxy = await FaultProxy(service.port).start()
    proxy.choose = post_faults(seed=23, rate=0.3)
    ledger = Ledger()
    workers, per_worker = 8, 66
    try:
        async with AsyncSessionClient(proxy.http_url, user_id=user_id, retry=POLICY) as client:
            await asyncio.gather(*(worker(client, ledger, n, per_worker) for n in range(workers)))
    finally:
        await proxy.stop()
    with SessionClient(service.url, user_id=user_id) as direct:
        lost, duplicated = await asyncio.to_thread(verify, direct, ledger)
        ordered = await asyncio.to_thread(in_order, direct, ledger)
    faults = sum(proxy.injected.values())
    print(
        f"\noperations={ledger.operations} faults={dict(proxy.injected)} lost={lost} "
        f"duplicated={duplicated}"
    )
    assert ledger.operations >= 500
    assert faults >= 100 and set(proxy.injected) == set(WEIGHTS)
    assert (lost, duplicated) == (0, 0)
    assert ordered


@pytest.fixture
def threaded_proxy(service: ServiceProcess) -> Iterator[FaultProxy]:
    """The proxy on its own event loop thread, for the blocking client."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = asyncio.run_coroutine_threadsafe(FaultProxy(service.port).start(), loop).result(30)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.mark.timeout(600)
def test_sync_client_retries_with_the_same_key(
    threaded_proxy: FaultProxy, service: ServiceProcess, user_id: str
) -> None:
    threaded_proxy.choose = post_faults(seed=5, rate=0.5)
    with SessionClient(threaded_proxy.http_url, user_id=user_id, retry=POLICY) as client:
        sid = client.create_session().session_id
        texts = [f"sync {n}" for n in range(60)]
        for text in texts:
            client.append(sid, "assistant", text)
    with SessionClient(service.url, user_id=user_id) as direct:
        assert [m.content for m in direct.iter_messages(sid)] == texts
        assert direct.statistics().total_sessions == 1
    assert sum(threaded_proxy.injected.values()) >= 10


def test_a_write_without_a_key_is_not_retried_blindly(
    threaded_proxy: FaultProxy, service: ServiceProcess, user_id: str
) -> None:
    """A rewind carries no key: after a lost reply its outcome is unknown, so it raises."""
    with SessionClient(service.url, user_id=user_id) as direct:
        sid = direct.create_session().session_id
        for n in range(3):
            direct.append(sid, "user", f"m{n}")
    threaded_proxy.choose = lambda chunk: "drop" if b"/rewind" in chunk else None
    client = SessionClient(threaded_proxy.http_url, user_id=user_id, retry=POLICY)
    with client, pytest.raises(errors.TransportError):
        client.rewind(sid, "msg_0000000001")
    assert threaded_proxy.injected["drop"] == 1  # one attempt, no retry
    with SessionClient(service.url, user_id=user_id) as direct:
        # The service did act: exactly what one rewind does, no more.
        assert [m.content for m in direct.iter_messages(sid)] == ["m0"]
