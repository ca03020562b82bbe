"""Property tests on the store: arbitrary user ids and JSON documents.

Any user id (glob and tag characters, any script) gets its own keyspace, and any
JSON a client may send comes back exactly as it was stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_service import errors
from session_service.app import build_store
from session_service.domain.ids import new_session_id
from session_service.domain.models import check_json_object
from session_service.domain.status import UNARCHIVED
from session_service.store.sessions import NewSession, SearchFilters, SessionStore
from tests.conftest import make_settings

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What the API lets through as X-User-ID: 1-256 characters, no control characters.
user_ids = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=256
) | st.sampled_from(["*", "?", "[a-z]", "{u}", "}{", "a:b", "fms:{YQ}:s:", "\\", "ユーザー"])

keys = st.text(min_size=1, max_size=128)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=100)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


def _bounded(doc: dict[str, Any]) -> bool:
    try:
        check_json_object(doc)
    except ValueError:
        return False
    return True


documents = st.dictionaries(keys, json_values, max_size=8).filter(_bounded)


@pytest.fixture(scope="module")
async def store(redis_url: str) -> AsyncIterator[SessionStore]:
    s = build_store(make_settings(redis_url), redis_url)
    yield s
    await s.close()


async def _create(store: SessionStore, user_id: str, metadata: dict[str, Any]) -> str:
    new = NewSession.build(new_session_id(), 3_600_000, title="title", metadata=metadata)
    result = await store.create(user_id, new)
    assert result.resumed is False
    return new.session_id


@PROPERTY
@given(owner=user_ids, other=user_ids, metadata=documents)
async def test_isolation_holds_for_any_user_ids(
    store: SessionStore, owner: str, other: str, metadata: dict[str, Any]
) -> None:
    if owner == other:
        other = owner + "x"
    sid = await _create(store, owner, metadata)

    with pytest.raises(errors.SessionNotFound):
        await store.get(other, sid)
    with pytest.raises(errors.SessionNotFound):
        await store.append(other, sid, "user", "hi")
    with pytest.raises(errors.SessionNotFound):
        await store.delete(other, sid)
    _, listed = await store.list_sessions(other, list(UNARCHIVED), 0, 1000)
    assert sid not in {s["session_id"] for s in listed}
    assert {s["user_id"] for s in listed} <= {other}
    _, found, _ = await store.search(other, SearchFilters(statuses=list(UNARCHIVED)), 100, None)
    assert sid not in {s["session_id"] for s in found}
    assert all(key.startswith(store.keys.base(other)) for key in await store.user_keys(other))

    session = await store.get(owner, sid)
    assert session["user_id"] == owner
    assert session["metadata"] == metadata
    assert session["message_count"] == 0


@PROPERTY
@given(user_id=user_ids, metadata=documents, context=documents, message_meta=documents,
       content=st.text(min_size=1, max_size=2000))  # fmt: skip
async def test_documents_and_messages_round_trip_exactly(
    store: SessionStore,
    user_id: str,
    metadata: dict[str, Any],
    context: dict[str, Any],
    message_meta: dict[str, Any],
    content: str,
) -> None:
    sid = await _create(store, user_id, metadata)
    # A key set to None is removed by an update (the API's null); any other value is kept.
    context = {key: value for key, value in context.items() if value is not None}
    patched = await store.update(user_id, sid, context=context)
    assert patched["context"] == context
    assert patched["metadata"] == metadata

    appended = await store.append(user_id, sid, "user", content, message_meta)
    assert appended.message["content"] == content
    stored = await store.message(user_id, sid, appended.message["message_id"])
    assert stored["content"] == content
    assert stored["metadata"] == message_meta

    again = await store.get(user_id, sid)
    assert again["metadata"] == metadata
    assert again["context"] == context
    assert again["message_count"] == 1
    _, page, _, _ = await store.messages_page(user_id, sid, 10, None, None, None)
    assert [(m["content"], m["metadata"]) for m in page] == [(content, message_meta)]
