"""Erasing a user: every key, in bounded steps, whole sessions only.

1. `erase.lua`, in slices of about `ERASE_SLICE` sessions: the first slice fixes
   the erase's cutoff (the server's now) and lists the erase among the user's
   erases in progress; the slices visit the expiry index with ZSCAN and drop,
   whole, every session created at or before the cutoff, then the forks published
   meanwhile from those sessions. Nothing is hidden or moved while it runs, so
   every operation sees the same sessions during an erase and after one that
   stopped half-way (the next erase finishes the job).
2. A SCAN of the user's tag finds what no index names (create idempotency
   records, rate counters, leftovers), and `erase_strays.lua` deletes each key
   that belongs to no live session, in batches of `STRAY_BATCH`. A fork's or a
   staged rewind's copy in progress has no session yet: it is kept when the
   session it copies (named by its `o:` marker, `keys.COPY_OWNER`) is one the
   erase spares, created after the cutoff, and deleted with it otherwise.
3. The SCAN is repeated (at most `SWEEPS` times) until it finds nothing to delete.

A session created while the erase runs is left whole (readable, listed and
counted); a session that existed before is dropped whole, however its writes
race the slices. Erasing with nothing racing leaves no key.
"""

from __future__ import annotations

import secrets

from session_service.store.base import StoreBase
from session_service.store.protocol import EraseArgs, EraseStraysArgs

ERASE_SLICE = 50
STRAY_BATCH = 500
SWEEPS = 3
#: How long a stopped erase stays listed as in progress (forks of the sessions it
#: would drop are handed to the next erase meanwhile; they are ordinary sessions).
MARK_TTL_MS = 600_000


async def erase_user(store: StoreBase, user_id: str) -> tuple[int, int]:
    """(live sessions deleted, keys deleted) for one user."""
    sessions = keys = 0
    run, cutoff, cursor = secrets.token_hex(8), None, "0"
    while True:
        args = EraseArgs(
            slice=ERASE_SLICE, run=run, cutoff=cutoff, cursor=cursor, mark_ttl_ms=MARK_TTL_MS
        )
        step = await store._write(store.scripts.erase, user_id, args)
        cutoff, cursor = step.cutoff, step.cursor
        sessions += step.live
        keys += step.keys
        if step.done:
            break
    base = store.keys.base(user_id)
    for _ in range(SWEEPS):
        found = [key[len(base) :] async for key in store._scan(store.keys.user_pattern(user_id))]
        deleted = 0
        for at in range(0, len(found), STRAY_BATCH):
            batch = found[at : at + STRAY_BATCH]
            deleted += await store._write(
                store.scripts.erase_strays,
                user_id,
                EraseStraysArgs(suffixes=tuple(batch), cutoff=cutoff),
            )
        keys += deleted
        if deleted == 0:
            break
    return sessions, keys
