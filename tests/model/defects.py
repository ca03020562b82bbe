"""Three of the review's defects, re-introduced behind a test-only switch.

The checker must be able to fail: `MODEL_DEFECT=<name>` (or the `defects_demo.py`
tests) wraps one method of each instance's store with a version that has the defect
back. The wrappers live here, in test code, and use only the store's public methods
and key names, so they keep re-introducing the defect whatever the fixed code looks
like:

- `rewind-drops-summaries` (review item 3): a rewind loses the summaries written
  while it runs (the staged rewind renamed its copy's summaries over the live ones).
- `delete-all-stops-after-count` (item 4): a delete-all counts the sessions when it
  starts, then deletes that many, earliest deadline first, so sessions created
  meanwhile (short-lived ones come first) are deleted in place of older ones.
- `erase-interrupted-hides-sessions` (item 5): every other erase is interrupted (503)
  after moving the user's expiry index aside, where nothing else looks, so delete-all
  and the next erase miss the sessions that `GET` still returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from session_service import errors

DEFECTS = (
    "rewind-drops-summaries",
    "delete-all-stops-after-count",
    "erase-interrupted-hides-sessions",
)


#: Controls: correct versions written the same way, to show that what the checker finds
#: with a defect switched on comes from the switch (while main still has its own copy
#: of that defect, the switch alone proves nothing).
CONTROLS = ("delete-all-reference",)


def injector(defect: str | None) -> Callable[[Any], None]:
    """A hook for `Instance.on_start`: re-introduce `defect` in that app's store."""
    if defect is None:
        return lambda app: None
    hooks = {
        "rewind-drops-summaries": _rewind_drops_summaries,
        "delete-all-stops-after-count": _delete_all_stops_after_count,
        "erase-interrupted-hides-sessions": _erase_interrupted_hides_sessions,
        "delete-all-reference": _delete_all_reference,
    }
    if defect not in hooks:
        raise ValueError(f"unknown defect {defect!r}; one of {', '.join(hooks)}")
    return hooks[defect]


def _rewind_drops_summaries(app: Any) -> None:
    store = app.state.store
    original = store.rewind

    async def rewind(user_id: str, session_id: str, *args: Any, **kwargs: Any) -> Any:
        key = store.keys.summaries(user_id, session_id)
        before = {entry for entry, _ in await store.client.xrange(key)}
        result = await original(user_id, session_id, *args, **kwargs)
        written = [entry for entry, _ in await store.client.xrange(key) if entry not in before]
        if written:
            await store.client.xdel(key, *written)
        return result

    store.rewind = rewind


def _delete_all_stops_after_count(app: Any) -> None:
    store = app.state.store

    async def delete_all(user_id: str) -> int:
        index = store.keys.expiry(user_id)
        bound = int(await store.client.zcard(index))
        handled = deleted = 0
        while handled < bound:
            batch = await store.client.zrange(index, 0, 1)  # earliest deadline first
            if not batch:
                break
            for sid in batch[: bound - handled]:
                handled += 1
                try:
                    await store.delete(user_id, sid)
                    deleted += 1
                except errors.NotFound:
                    await store.client.zrem(index, sid)
        return deleted

    store.delete_all = delete_all


def _erase_interrupted_hides_sessions(app: Any) -> None:
    store = app.state.store
    original = store.erase_user
    calls = 0

    async def erase_user(user_id: str) -> Any:
        nonlocal calls
        calls += 1
        if calls % 2 == 1:
            index = store.keys.expiry(user_id)
            with contextlib.suppress(Exception):  # no index: nothing to hide
                await store.client.rename(index, store.keys.base(user_id) + "h")
            raise errors.StorageUnavailable("erase interrupted (re-introduced defect)")
        return await original(user_id)

    store.erase_user = erase_user


def _delete_all_reference(app: Any) -> None:
    """Delete-all as the contract says: every session indexed when it starts is deleted
    (the expiry index holds every live session; an interrupted erase's queue, `e`, holds
    the ones it moved aside), so none that existed before survives."""
    store = app.state.store

    async def delete_all(user_id: str) -> int:
        deleted = 0
        queued = store.keys.base(user_id) + "e"
        indexed = await store.client.zrange(store.keys.expiry(user_id), 0, -1)
        for sid in [*indexed, *await store.client.zrange(queued, 0, -1)]:
            try:
                await store.delete(user_id, sid)
                deleted += 1
            except errors.NotFound:
                continue
        return deleted

    store.delete_all = delete_all
