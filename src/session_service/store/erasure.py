"""Erasing a user: every key, in bounded steps, whole sessions only.

1. `erase.lua`, in slices of `ERASE_SLICE` sessions: the first slice moves the
   user's expiry index aside as the erase queue (a RENAME, O(1)), so the queue
   holds every session that existed when the erase started; each slice drops
   whole sessions from it (keys, index entries, client_id) until it is empty.
2. A SCAN of the user's tag finds what no index names (create idempotency
   records, rate counters, leftovers), and `erase_strays.lua` deletes each key
   that belongs to no live session, in batches of `STRAY_BATCH`.
3. The SCAN is repeated (at most `SWEEPS` times) until it finds nothing to delete.

A session created while the erase runs goes into a fresh index and is left whole
(readable, listed and counted); a session that existed before is dropped whole,
however its writes race the slices. Erasing with nothing racing leaves no key.
"""

from __future__ import annotations

from typing import Any

from session_service.store.protocol import EraseArgs, EraseStraysArgs

ERASE_SLICE = 100
STRAY_BATCH = 500
SWEEPS = 3


async def erase_user(store: Any, user_id: str) -> tuple[int, int]:
    """(live sessions deleted, keys deleted) for one user."""
    sessions = keys = 0
    started = False
    while True:
        reply = await store._write(
            store.scripts.erase, user_id, EraseArgs(ERASE_SLICE, start=not started)
        )
        started = started or reply[0] == 1
        sessions += int(reply[2])
        keys += int(reply[3])
        if started and int(reply[4]) == 0:
            break
    base = store.keys.base(user_id)
    for _ in range(SWEEPS):
        found = [key[len(base) :] async for key in store._scan(store.keys.user_pattern(user_id))]
        deleted = 0
        for at in range(0, len(found), STRAY_BATCH):
            batch = found[at : at + STRAY_BATCH]
            deleted += int(
                await store._write(
                    store.scripts.erase_strays, user_id, EraseStraysArgs(tuple(batch))
                )
            )
        keys += deleted
        if deleted == 0:
            break
    return sessions, keys
