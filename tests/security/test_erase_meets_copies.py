"""An erase's stray sweep meets a fork or a long rewind of a session it keeps.

A session created after an erase began is left whole by it. A fork of it, or a
staged rewind of it, builds its copy under a staging id that has no session record
yet; the erase's sweep of leftover keys (erase_strays.lua) sees keys of no live
session there and deletes them. The publishing script (fork.lua, rewind_swap.lua)
must then notice that the copy is no longer whole and start over, never publish a
session whose counters promise messages its conversation no longer holds.

Each script runs for real on the real server; the test only holds a caller between
two of its own script calls, as a slow process would.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import pytest

from session_service.store.branches import INLINE_MAX
from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, next_millisecond

ADMIN = user("root", **{"X-User-Roles": '["admin"]'})
KEPT = 10
LONG = INLINE_MAX + 16  # removed by the rewind: more than one script removes (staged)


def erase_url(user_id: str) -> str:
    return f"/api/v1/users/{urllib.parse.quote(user_id, safe='')}/sessions"


def mid(n: int) -> str:
    return f"msg_{n:010d}"


class Gate:
    """Wraps a store script: the first call waits at the gate before it runs
    (`reached` is set), until `opened`."""

    def __init__(self, script: Any, after: bool = False) -> None:
        self.script = script
        self.after = after
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.script, name)

    async def __call__(self, *args: Any) -> Any:
        if not self.after and not self.reached.is_set():
            self.reached.set()
            await self.opened.wait()
        reply = await self.script(*args)
        if self.after and not self.reached.is_set():
            self.reached.set()
            await self.opened.wait()
        return reply


@pytest.mark.parametrize("operation", ["fork", "rewind"])
async def test_an_erase_sweep_during_a_copy_never_publishes_a_hollow_conversation(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    async with make_client() as client:
        store = client.app.state.store  # type: ignore[attr-defined]
        h = user("sweeper")
        # The erase fixes its cutoff and finishes its sessions (there are none) ...
        erase_done = Gate(store.scripts.erase, after=True)
        monkeypatch.setattr(store.scripts, "erase", erase_done)
        erasing = asyncio.ensure_future(client.delete(erase_url("sweeper"), headers=ADMIN))
        async with asyncio.timeout(60):
            await erase_done.reached.wait()
        await next_millisecond(store.client)  # (not in the cutoff's own millisecond)

        # ... then a session is created, which the erase must leave whole.
        sid = (await create_session(client, "sweeper"))["session_id"]
        for n in range(1, KEPT + LONG + 1):
            body = {"role": "user" if n % 2 else "assistant", "content": f"m{n}"}
            response = await client.post(f"{API}/{sid}/messages", json=body, headers=h)
            assert response.status_code == 201, response.text

        # Its copy is built and about to be published ...
        name = "fork" if operation == "fork" else "rewind_swap"
        publish = Gate(getattr(store.scripts, name))
        monkeypatch.setattr(store.scripts, name, publish)
        if operation == "fork":
            request = client.post(
                f"{API}/{sid}/fork", json={"through_message_id": mid(KEPT)}, headers=h
            )
        else:
            request = client.post(
                f"{API}/{sid}/rewind", json={"to_message_id": mid(KEPT)}, headers=h
            )
        copying = asyncio.ensure_future(request)
        reached = asyncio.ensure_future(publish.reached.wait())
        await asyncio.wait([reached, copying], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert not copying.done(), copying.result().text

        # ... when the erase sweeps the keys of no live session, and answers.
        erase_done.opened.set()
        erased = await erasing
        assert erased.status_code == 200, erased.text
        publish.opened.set()
        answer = await copying
        assert answer.status_code in (200, 201), answer.text

        target = answer.json()["session_id"] if operation == "fork" else sid
        session = (await client.get(f"{API}/{target}", headers=h)).json()
        page = await client.get(f"{API}/{target}/messages", params={"limit": 100}, headers=h)
        assert page.status_code == 200, page.text
        listed = [m["message_id"] for m in page.json()["messages"]]
        assert session["message_count"] == KEPT
        assert listed == [mid(n) for n in range(1, KEPT + 1)], "the copy was swept away"
