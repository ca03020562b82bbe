"""The import's store side: staged messages stay invisible until the one commit,
an incomplete staging is refused, a retried chunk is applied once; and the
import works on Standalone, Sentinel and Cluster alike."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from session_legacy import writer as importing
from session_legacy.codecs import AlreadyThere, ImportStageArgs, Staged
from session_legacy.records import LegacySession
from session_service import errors
from session_service.store.reply_decoding import Refusal
from session_service.store.sessions import SessionStore
from tests.conftest import user
from tests.helpers import API
from tests.legacy import legacy


def store_of(client: httpx.AsyncClient) -> SessionStore:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    return store


async def stage(
    store: SessionStore, session: LegacySession, first: int, count: int
) -> Staged | AlreadyThere | Refusal:
    messages = [
        str(part)
        for m in session.messages[first - 1 : first - 1 + count]
        for part in (m.role, m.content, m.timestamp_ms, m.metadata_json, 1)
    ]
    args = ImportStageArgs(
        sid=session.session_id,
        first_seq=first,
        staging_ttl_ms=importing.STAGING_TTL_MS,
        messages=tuple(messages),
    )
    return await store._write(store.scripts.import_stage, session.user_id, args)


async def test_staged_messages_stay_invisible_and_an_incomplete_staging_is_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    store = store_of(client)
    session = legacy("u-stage", 6)
    assert await stage(store, session, 1, 3) == Staged("ok", 3)
    assert (
        await client.get(f"{API}/{session.session_id}", headers=user("u-stage"))
    ).status_code == 404
    assert (await client.get(API, headers=user("u-stage"))).json()["total"] == 0
    staging = store.keys.import_staging("u-stage", session.session_id)
    assert 0 < await redis.pttl(staging) <= importing.STAGING_TTL_MS

    with pytest.raises(errors.StorageUnavailable):
        await importing.commit(store, session, -1)
    assert not await redis.exists(store.keys.session("u-stage", session.session_id))


async def test_a_retried_chunk_is_applied_once_and_a_gap_is_refused(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    store = store_of(client)
    session = legacy("u-retry", 6)
    await stage(store, session, 1, 3)
    assert await stage(store, session, 4, 3) == Staged("ok", 6)
    assert await stage(store, session, 4, 3) == Staged("ok", 6), "the same chunk again: no change"
    staging = store.keys.import_staging("u-retry", session.session_id)
    assert await redis.xlen(staging) == 6
    assert await stage(store, session, 8, 1) == Refusal("err", "import_gap", "6")
