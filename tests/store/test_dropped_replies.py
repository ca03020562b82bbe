"""Exactly once across dropped connections (issue 11, item 1).

The service talks to Redis through a real TCP proxy that drops replies after
forwarding the command, resets connections mid-reply and stalls replies past
REDIS_TIMEOUT_SECONDS. Whatever the proxy does:

- every acknowledged (2xx) message is stored exactly once, none twice;
- every answer is what the first attempt alone would have given (a delete never
  answers 404, a restore never 409, because of an internal retry);
- a 503 leaves the outcome unknown, and the client's retry with the same
  Idempotency-Key resolves it exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.keys import Keys
from session_service.store.scripts import load_scripts
from tests.conftest import make_settings, running_app, user
from tests.helpers import API
from tests.proxy import FAULTS, FaultProxy, once, random_faults
from tests.servers import RedisProcess

USER = "flaky"
WORKERS = 4
ROUNDS = 12  # per worker: 48 sessions, ~300 appends, plus status changes and deletes


@dataclass
class Ledger:
    """What the service acknowledged, and every answer that no first attempt gives."""

    acked: dict[str, str] = field(default_factory=dict)  # message answered 201 -> its session
    unknown: set[str] = field(default_factory=set)  # answered 503
    titles_acked: set[str] = field(default_factory=set)
    titles_unknown: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    live: set[str] = field(default_factory=set)
    wrong: list[str] = field(default_factory=list)
    answers: Counter[int] = field(default_factory=Counter)
    resolved_by_retry: int = 0


@pytest.fixture
async def proxy(redis_process: RedisProcess, redis: Redis) -> AsyncIterator[FaultProxy]:
    # Scripts already loaded: a faulted EVALSHA then runs, instead of answering NOSCRIPT.
    for script in load_scripts().by_name.values():
        await redis.script_load(script.source)
    proxy = await FaultProxy(redis_process.port).start()
    yield proxy
    await proxy.stop()


async def _call(
    client: httpx.AsyncClient, ledger: Ledger, method: str, path: str, **kw: Any
) -> httpx.Response:
    response = await client.request(method, path, headers=kw.pop("headers", user(USER)), **kw)
    ledger.answers[response.status_code] += 1
    if response.status_code == 503:
        assert response.json()["code"] == "storage_unavailable"
        assert "retry-after" in response.headers
    else:
        assert response.status_code < 500, response.text
    return response


async def _keyed(
    client: httpx.AsyncClient, ledger: Ledger, method: str, path: str, key: str, **kw: Any
) -> httpx.Response:
    """A client that retries with the same Idempotency-Key until it gets an answer."""
    headers = {**user(USER), "Idempotency-Key": key}
    for attempt in itertools.count():
        response = await _call(client, ledger, method, path, headers=headers, **kw)
        if response.status_code != 503:
            ledger.resolved_by_retry += attempt > 0
            return response
        assert attempt < 200, "the storage never answered"
    raise AssertionError("unreachable")


async def _append(
    client: httpx.AsyncClient, ledger: Ledger, sid: str, content: str, keyed: bool
) -> None:
    body = {"role": "user", "content": content}
    path = f"{API}/{sid}/messages"
    if keyed:
        response = await _keyed(client, ledger, "POST", path, f"k-{content}", json=body)
    else:
        response = await _call(client, ledger, "POST", path, json=body)
    if response.status_code == 201:
        ledger.acked[content] = sid
    elif response.status_code == 503:
        ledger.unknown.add(content)
    else:
        ledger.wrong.append(f"append {content}: {response.status_code} {response.text}")


async def _session(client: httpx.AsyncClient, ledger: Ledger, worker: int, n: int) -> None:
    title = f"w{worker}-s{n}"
    if n % 2:
        response = await _keyed(client, ledger, "POST", API, f"c-{title}", json={"title": title})
    else:
        response = await _call(client, ledger, "POST", API, json={"title": title})
    if response.status_code == 503:
        ledger.titles_unknown.add(title)
        return
    if response.status_code != 201:
        ledger.wrong.append(f"create {title}: {response.status_code} {response.text}")
        return
    ledger.titles_acked.add(title)
    sid = response.json()["session_id"]
    certain = True  # every earlier write of this session was acknowledged
    for i in range(6):
        await _append(client, ledger, sid, f"{title}-m{i}", keyed=i % 3 == 0)
    base = f"{API}/{sid}"
    steps: list[tuple[str, str, dict[str, Any] | None, int]] = [
        ("PATCH", base, {"status": "completed"}, 200),
        ("POST", f"{base}/archive", None, 200),
        ("POST", f"{base}/restore", None, 200),
    ]
    for method, path, body, expected in steps:
        response = await _call(client, ledger, method, path, json=body)
        if response.status_code == 503:
            certain = False
        elif certain and response.status_code != expected:
            ledger.wrong.append(f"{method} {path}: {response.status_code} {response.text}")
    if n % 3 == 0:
        await _delete(client, ledger, sid)
        return
    ledger.live.add(sid)


async def _delete(client: httpx.AsyncClient, ledger: Ledger, sid: str) -> None:
    path = f"{API}/{sid}"
    response = await _call(client, ledger, "DELETE", path)
    ok = response.status_code == 204
    while response.status_code == 503:
        # The outcome is unknown: the client retries; now a 404 means it was done.
        response = await _call(client, ledger, "DELETE", path)
        ok = response.status_code in (204, 404)
    if not ok:
        ledger.wrong.append(f"delete {sid}: {response.status_code} {response.text}")
    ledger.deleted.add(sid)


async def _stored_messages(redis: Redis, keys: Keys, sid: str) -> list[str]:
    """Every message of a session, read by paging the stream."""
    contents: list[str] = []
    start = "-"
    while True:
        entries = await redis.xrange(keys.messages(USER, sid), start, "+", count=100)
        contents.extend(fields["c"] for _, fields in entries)
        if len(entries) < 100:
            return contents
        start = f"({entries[-1][0]}"


async def _stored_titles(redis: Redis, keys: Keys) -> Counter[str]:
    titles: Counter[str] = Counter()
    async for key in redis.scan_iter(match=keys.session(USER, "*"), count=500):
        title = await redis.hget(key, "t")
        if title is not None:
            titles[title] += 1
    return titles


@pytest.mark.timeout(600)  # ~10 s here; a stalled reply costs REDIS_TIMEOUT_SECONDS on a busy box
async def test_no_acknowledged_write_is_lost_or_doubled_through_a_flaky_proxy(
    proxy: FaultProxy, redis: Redis, redis_url: str
) -> None:
    settings = make_settings(proxy.url, redis_timeout_seconds=0.5, redis_max_connections=16)
    proxy.choose = random_faults(seed=11, rate=0.12)
    ledger = Ledger()
    async with running_app(settings) as client:
        await asyncio.gather(*(_worker(client, ledger, worker) for worker in range(WORKERS)))
    keys = Keys(settings.key_prefix)
    stored: Counter[str] = Counter()
    for sid in ledger.live:
        stored.update(await _stored_messages(redis, keys, sid))
    titles = await _stored_titles(redis, keys)
    doubled = sorted(c for c, n in stored.items() if n > 1)
    lost = sorted(c for c, sid in ledger.acked.items() if sid in ledger.live and not stored[c])
    doubled_sessions = sorted(t for t, n in titles.items() if n > 1)
    missing_sessions = sorted(t for t in ledger.titles_acked if _kept(t) and titles[t] != 1)
    leftovers = [
        key
        for sid in ledger.deleted
        for key in (keys.session(USER, sid), keys.messages(USER, sid))
        if await redis.exists(key)
    ]
    print(
        f"faults injected: {dict(proxy.injected)}; answers: {dict(ledger.answers)}; "
        f"messages acked {len(ledger.acked)}, unknown {len(ledger.unknown)}; "
        f"doubled messages {len(doubled)}, lost {len(lost)}, doubled sessions "
        f"{len(doubled_sessions)}, wrong answers {len(ledger.wrong)}, "
        f"keyed retries resolved {ledger.resolved_by_retry}"
    )
    assert sum(proxy.injected.values()) >= 30, proxy.injected
    assert set(proxy.injected) == {"drop", "reset", "stall"}, proxy.injected
    assert ledger.answers[503] > 0, "no fault reached an answer: the test proves nothing"
    assert doubled == [], doubled
    assert lost == [], lost
    assert doubled_sessions == [], doubled_sessions
    assert missing_sessions == [], missing_sessions
    assert ledger.wrong == [], ledger.wrong
    assert leftovers == [], leftovers


def _kept(title: str) -> bool:
    """Every third session is deleted at the end of its round."""
    return int(title.rsplit("-s", 1)[1]) % 3 != 0


async def _worker(client: httpx.AsyncClient, ledger: Ledger, worker: int) -> None:
    for n in range(ROUNDS):
        await _session(client, ledger, worker, n)


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_write_whose_reply_is_lost_is_503_and_the_keyed_retry_stores_it_once(
    proxy: FaultProxy, redis: Redis, fault: str
) -> None:
    settings = make_settings(proxy.url, redis_timeout_seconds=0.5)
    keys = Keys(settings.key_prefix)
    async with running_app(settings) as client:
        created = await client.post(API, json={}, headers=user(USER))
        sid = created.json()["session_id"]
        proxy.choose = once(fault, b"EVALSHA")
        headers = {**user(USER), "Idempotency-Key": f"append-{fault}"}
        body = {"role": "user", "content": f"once through {fault}"}
        first = await client.post(f"{API}/{sid}/messages", json=body, headers=headers)
        assert first.status_code == 503, first.text
        assert first.json()["code"] == "storage_unavailable"
        assert first.headers["retry-after"] == "1"
        # The command reached Redis and ran once; the service did not send it again.
        assert await _stored_messages(redis, keys, sid) == [body["content"]]
        retry = await client.post(f"{API}/{sid}/messages", json=body, headers=headers)
        assert retry.status_code == 201, retry.text
        assert retry.json()["message"]["message_id"] == "msg_0000000001"
    assert await _stored_messages(redis, keys, sid) == [body["content"]]
    assert proxy.injected == {fault: 1}


async def test_a_delete_whose_reply_is_lost_is_503_never_a_404(
    proxy: FaultProxy, redis: Redis
) -> None:
    settings = make_settings(proxy.url, redis_timeout_seconds=0.5)
    async with running_app(settings) as client:
        sid = (await client.post(API, json={}, headers=user(USER))).json()["session_id"]
        proxy.choose = once("drop", b"EVALSHA")
        first = await client.delete(f"{API}/{sid}", headers=user(USER))
        assert first.status_code == 503, first.text
        # It ran once: the client's own retry learns the session is gone.
        again = await client.delete(f"{API}/{sid}", headers=user(USER))
        assert again.status_code == 404
    assert await redis.keys("*") == []


async def test_a_stale_pooled_connection_is_replaced_before_a_write_is_sent(
    proxy: FaultProxy, redis: Redis
) -> None:
    """Nothing was sent on a connection the server closed while idle: no 503 for that."""
    settings = make_settings(proxy.url)
    keys = Keys(settings.key_prefix)
    async with running_app(settings) as client:
        sid = (await client.post(API, json={}, headers=user(USER))).json()["session_id"]
        for i in range(3):
            await proxy.sever_all()
            for _ in range(5):
                await asyncio.sleep(0)  # loop turns (not time) for the FIN to be read
            body = {"role": "user", "content": f"after restart {i}"}
            response = await client.post(f"{API}/{sid}/messages", json=body, headers=user(USER))
            assert response.status_code == 201, response.text
    contents = await _stored_messages(redis, keys, sid)
    assert contents == [f"after restart {i}" for i in range(3)]


@pytest.mark.parametrize("fault", ["drop", "reset"])
async def test_a_read_whose_reply_is_lost_is_read_again(proxy: FaultProxy, fault: str) -> None:
    """Reading twice changes nothing, so a read is retried instead of answering 503."""
    settings = make_settings(proxy.url, redis_timeout_seconds=0.5)
    async with running_app(settings) as client:
        sid = (await client.post(API, json={"title": "r"}, headers=user(USER))).json()["session_id"]
        proxy.choose = once(fault, b"HGETALL")
        response = await client.get(f"{API}/{sid}", headers=user(USER))
        assert response.status_code == 200, response.text
        assert response.json()["title"] == "r"
    assert proxy.injected == {fault: 1}
