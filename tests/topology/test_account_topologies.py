"""HEAD, statistics, delete-all and the evict_oldest limit policy on Standalone,
Sentinel and Cluster (a replica acknowledges every write on the latter two)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ClientFactory, user
from tests.helpers import API

pytestmark = pytest.mark.topology


async def test_account_operations_on_every_topology(make_app: ClientFactory) -> None:
    async with make_app(max_sessions_per_user=4, session_limit_policy="evict_oldest") as app:
        h = user("u-account")
        sids = []
        for _ in range(4):
            response = await app.post(API, json={}, headers=h)
            assert response.status_code == 201, response.text
            sids.append(response.json()["session_id"])
            await asyncio.sleep(0.003)  # distinct milliseconds of activity
        await app.post(f"{API}/{sids[0]}/messages", json={"role": "user", "content": "x"},
                       headers=h)  # fmt: skip
        await app.post(f"{API}/{sids[1]}/archive", headers=h)
        newest = (await app.post(API, json={}, headers=h)).json()["session_id"]
        # sids[0] had activity later than sids[2]; sids[1] is archived: sids[2] goes.
        assert (await app.head(f"{API}/{sids[2]}", headers=h)).status_code == 404
        for sid in (sids[0], sids[1], sids[3], newest):
            assert (await app.head(f"{API}/{sid}", headers=h)).status_code == 200
        stats = (await app.get(f"{API}/statistics", headers=h)).json()
        assert (stats["total_sessions"], stats["total_messages"]) == (4, 1)
        assert stats["by_status"]["archived"] == 1
        assert (await app.delete(API, headers=h)).json() == {"deleted": 4}
        stats = (await app.get(f"{API}/statistics", headers=h)).json()
        assert (stats["total_sessions"], stats["total_messages"]) == (0, 0)
