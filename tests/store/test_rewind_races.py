"""A long (staged) rewind meets the writes made while it copies (issue 20, defects 3, 8).

A rewind that removes more than INLINE_MAX messages copies the kept part in slices
and swaps it in with one last script. The app talks to Redis through a proxy that
holds that swap, so a test can write while the copy is done and not yet swapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from session_service.store.branches import INLINE_MAX
from session_service.store.scripts import load_scripts
from tests.conftest import client_settings, create_session, running_app, user
from tests.helpers import API, get_json, keys_of, mid
from tests.proxy import FaultProxy
from tests.servers import RedisProcess

LONG = INLINE_MAX + 16  # messages after the rewind point: more than one script removes


@pytest.fixture
async def proxy(redis_process: RedisProcess, redis: Redis) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(redis_process.port).start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(client_settings(proxy.url)) as app:
        yield app


async def _conversation(client: httpx.AsyncClient, count: int) -> str:
    sid: str = (await create_session(client))["session_id"]
    for n in range(1, count + 1):
        body = {"role": "user" if n % 2 else "assistant", "content": f"m{n}"}
        response = await client.post(f"{API}/{sid}/messages", json=body, headers=user())
        assert response.status_code == 201, response.text
    return sid


async def _summary(client: httpx.AsyncClient, sid: str, through: int) -> str:
    body = {"content": f"up to {through}", "covers_through": mid(through)}
    response = await client.post(f"{API}/{sid}/summaries", json=body, headers=user())
    assert response.status_code == 201, response.text
    summary_id: str = response.json()["summary_id"]
    return summary_id


async def _held_swap(
    proxy: FaultProxy, client: httpx.AsyncClient, sid: str, to: int
) -> asyncio.Task[httpx.Response]:
    """Start a rewind to `to`; return once its copy is done and its swap is held."""
    swap = load_scripts().rewind_swap.sha.encode()
    proxy.hold = lambda chunk: swap in chunk
    body = {"to_message_id": mid(to)}
    rewind = asyncio.create_task(client.post(f"{API}/{sid}/rewind", json=body, headers=user()))
    async with asyncio.timeout(60):
        await proxy.held.wait()
    return rewind


async def test_a_summary_written_during_the_copy_that_covers_kept_messages_survives(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    sid = await _conversation(client, 10 + LONG)
    first = await _summary(client, sid, 5)
    rewind = await _held_swap(proxy, client, sid, 10)

    during = await _summary(client, sid, 8)  # written after the copy, before the swap
    proxy.release()
    rewound = await rewind

    assert rewound.status_code == 200, rewound.text
    assert rewound.json() == {"removed": LONG, "last_message_id": mid(10)}
    listed = await get_json(client, f"{API}/{sid}/summaries")
    assert [s["summary_id"] for s in listed["summaries"]] == [during, first]
    window = await get_json(client, f"{API}/{sid}/window?max_tokens=100000")
    assert window["summary"]["summary_id"] == during
    later = await _summary(client, sid, 9)
    assert later == "sum_0000000003", "summary ids are never reused"
    assert len((await get_json(client, f"{API}/{sid}/summaries"))["summaries"]) == 3


async def test_a_summary_written_during_the_copy_that_covers_a_removed_message_goes(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    sid = await _conversation(client, 10 + LONG)
    first = await _summary(client, sid, 5)
    rewind = await _held_swap(proxy, client, sid, 10)

    await _summary(client, sid, 50)
    proxy.release()
    assert (await rewind).status_code == 200

    listed = await get_json(client, f"{API}/{sid}/summaries")
    assert [s["summary_id"] for s in listed["summaries"]] == [first]
    window = await get_json(client, f"{API}/{sid}/window?max_tokens=100000")
    assert window["summary"]["summary_id"] == first


async def test_more_summaries_during_the_copy_than_one_swap_carries_all_survive(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    sid = await _conversation(client, 10 + LONG)
    first = await _summary(client, sid, 5)
    rewind = await _held_swap(proxy, client, sid, 10)

    during = [await _summary(client, sid, 8 + n // 30) for n in range(80)]  # > CARRY_MAX
    proxy.release()
    assert (await rewind).status_code == 200

    listed = await get_json(client, f"{API}/{sid}/summaries?limit=100")
    assert [s["summary_id"] for s in listed["summaries"]] == [*reversed(during), first]
    window = await get_json(client, f"{API}/{sid}/window?max_tokens=100000")
    assert window["summary"]["summary_id"] == during[-1]


# Defect 8: append idempotency records go with the messages a rewind removes.


def _records(sid: str) -> tuple[str, str]:
    """The keys of a session's append idempotency records and their index."""
    owned = keys_of("u1", sid)
    return owned.idempotency, owned.idempotency_age


async def _append(client: httpx.AsyncClient, sid: str, key: str) -> httpx.Response:
    body = {"role": "user", "content": f"content of {key}"}
    headers = user(**{"Idempotency-Key": key})
    return await client.post(f"{API}/{sid}/messages", json=body, headers=headers)


async def _count(client: httpx.AsyncClient, sid: str) -> int:
    return int((await get_json(client, f"{API}/{sid}"))["message_count"])


@pytest.mark.parametrize("removed", [6, LONG], ids=["inline", "staged"])
async def test_append_records_stay_within_one_per_message_through_rewinds(
    client: httpx.AsyncClient, redis: Redis, removed: int
) -> None:
    sid: str = (await create_session(client))["session_id"]
    records, index = _records(sid)
    for round_ in range(3):
        ids = []
        for n in range(4 + removed):
            appended = await _append(client, sid, f"r{round_}-{n}")
            assert appended.status_code == 201, appended.text
            ids.append(appended.json()["message"]["message_id"])
        rewound = await client.post(
            f"{API}/{sid}/rewind", json={"to_message_id": ids[3]}, headers=user()
        )
        assert rewound.json()["removed"] == removed, rewound.text
        assert await redis.hlen(records) <= await _count(client, sid), "one record per message"
        assert await redis.zcard(index) == await redis.hlen(records)


@pytest.mark.parametrize("removed", [6, LONG], ids=["inline", "staged"])
async def test_after_a_rewind_kept_keys_replay_and_removed_keys_are_forgotten(
    client: httpx.AsyncClient, removed: int
) -> None:
    sid: str = (await create_session(client))["session_id"]
    first = [await _append(client, sid, f"k{n}") for n in range(4 + removed)]
    ids = [r.json()["message"]["message_id"] for r in first]
    rewound = await client.post(
        f"{API}/{sid}/rewind", json={"to_message_id": ids[3]}, headers=user()
    )
    assert rewound.status_code == 200, rewound.text

    kept = await _append(client, sid, "k2")
    assert kept.status_code == 201
    assert kept.json()["message"]["message_id"] == ids[2], "a kept message's key replays"
    assert await _count(client, sid) == 4

    again = await _append(client, sid, "k5")  # its message was removed: a new append
    assert again.status_code == 201, again.text
    new_id = again.json()["message"]["message_id"]
    assert new_id == mid(4 + removed + 1), "ids are never reused"
    assert await _count(client, sid) == 5
    replayed = await _append(client, sid, "k5")
    assert replayed.json()["message"]["message_id"] == new_id
    assert await _count(client, sid) == 5


async def test_a_keyed_append_during_the_copy_goes_with_its_record(
    proxy: FaultProxy, client: httpx.AsyncClient, redis: Redis
) -> None:
    sid: str = (await create_session(client))["session_id"]
    for n in range(10 + LONG):
        assert (await _append(client, sid, f"k{n}")).status_code == 201
    rewind = await _held_swap(proxy, client, sid, 10)

    during = await _append(client, sid, "during")
    assert during.status_code == 201
    proxy.release()
    assert (await rewind).json()["removed"] == LONG + 1

    records, index = _records(sid)
    assert await redis.hlen(records) == 10
    assert await redis.zcard(index) == 10
    assert (await _append(client, sid, "k9")).json()["message"]["message_id"] == mid(10)
    assert await _count(client, sid) == 10


@pytest.mark.parametrize("removed", [6, LONG], ids=["inline", "staged"])
async def test_records_of_an_earlier_release_scored_by_time_survive_a_rewind(
    client: httpx.AsyncClient, redis: Redis, removed: int
) -> None:
    """Releases before issue 20 scored the record index by append time: a rewind
    keeps those records (a retry of a kept message still replays, never doubles)."""
    sid: str = (await create_session(client))["session_id"]
    ids = [
        (await _append(client, sid, f"k{n}")).json()["message"]["message_id"]
        for n in range(4 + removed)
    ]
    records, index = _records(sid)
    for key, record in (await redis.hgetall(records)).items():
        await redis.zadd(index, {key: int(record.rsplit("|", 1)[1])})  # as stored then

    rewound = await client.post(
        f"{API}/{sid}/rewind", json={"to_message_id": ids[3]}, headers=user()
    )
    assert rewound.json()["removed"] == removed, rewound.text

    for n in range(4):
        replayed = await _append(client, sid, f"k{n}")
        assert replayed.json()["message"]["message_id"] == ids[n]
    assert await _count(client, sid) == 4
    assert await redis.zcard(index) == await redis.hlen(records)
