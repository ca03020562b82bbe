"""import-legacy's scripts on Standalone, Sentinel and Cluster (with a replica
acknowledging every write on the latter two): the session and its chunked
messages arrive whole, a second import changes nothing."""

from __future__ import annotations

import httpx
import pytest

from session_legacy import writer as importing
from session_service.store.sessions import SessionStore
from tests.conftest import user
from tests.legacy import legacy

pytestmark = pytest.mark.topology


async def test_an_imported_session_reads_back_whole_on_every_topology(
    app: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "CHUNK_MESSAGES", 7)  # several chunks, few messages
    store: SessionStore = app.app.state.store  # type: ignore[attr-defined]
    session = legacy("u-topology", 20)
    assert await importing.import_session(store, session, 3_600_000) is None
    assert await importing.import_session(store, session, 3_600_000) == "already imported"
    sid = session.session_id
    got = await app.get(f"/api/v1/sessions/{sid}", headers=user("u-topology"))
    assert got.json()["message_count"] == 20
    page = await app.get(
        f"/api/v1/sessions/{sid}/messages", params={"limit": 500}, headers=user("u-topology")
    )
    assert [m["content"] for m in page.json()["messages"]] == [f"m{n}" for n in range(20)]
