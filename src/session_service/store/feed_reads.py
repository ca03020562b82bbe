"""The change feed's reads: the stored state a watcher turns into events.

A watcher never trusts a notification for content: after every wake (and on
every (re)subscription) it reads the session and the messages after its cursor
here, in one round trip. Notifications may be lost, duplicated or late; the
stored state is the truth, so a lost one only delays an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from session_service.store.base import StoreBase
from session_service.store.codec import message_from_entry, summary_from_entry
from session_service.store.lifecycle import _tagged
from session_service.store.protocol import FeedArgs, WatchArgs
from session_service.store.records import Tagged
from session_service.store.replies import FeedRead, Gone


@dataclass(frozen=True, slots=True)
class FeedState:
    session: Tagged
    #: Messages after the cursor, oldest first, at most the page asked for.
    messages: list[dict[str, Any]]
    more: bool  # more messages follow the page
    #: The highest stored message seq at or below the cursor: below it when a rewind
    #: removed the cursor's message (0 when none is left, or no cursor was given).
    kept: int
    latest_summary: int  # seq of the newest summary, 0 when none
    expires_at_ms: int  # 0 when the session never expires


class FeedOps(StoreBase):
    async def feed_state(
        self, user_id: str, session_id: str, after: int, limit: int
    ) -> FeedState | None:
        """The session and up to `limit` messages after seq `after` (feed.lua, atomic);
        None once the session is gone."""
        args = FeedArgs(sid=session_id, after=after, limit=limit)
        return _state(
            user_id, session_id, limit, await self._read(self.scripts.feed, user_id, args)
        )

    async def feed_states(
        self, reads: list[tuple[str, str, int, int]]
    ) -> list[FeedState | Exception | None]:
        """Several watchers' `feed_state` reads, (user, session, after, limit) each, in
        one round trip: a pipeline of feed.lua calls. An entry whose call failed (a
        script cache lost in a failover, a slot moving) answers its exception; the
        caller reads it again alone."""
        calls = [FeedArgs(sid=sid, after=after, limit=limit) for _, sid, after, limit in reads]
        replies = await self._feed_pipeline(reads, calls)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            # A server that lost its script cache (a restart, a failover): load it once.
            await self.client.script_load(self.scripts.feed.source)
            replies = await self._feed_pipeline(reads, calls)
        return [
            reply
            if isinstance(reply, Exception)
            else _state(user_id, sid, limit, args.decode(reply))
            for (user_id, sid, _, limit), args, reply in zip(reads, calls, replies, strict=True)
        ]

    async def _feed_pipeline(
        self, reads: list[tuple[str, str, int, int]], calls: list[FeedArgs]
    ) -> list[Any]:
        script = self.scripts.feed
        pipe = self.client.pipeline(transaction=False)
        for (user_id, _, _, _), args in zip(reads, calls, strict=True):
            pipe.evalsha(script.sha, 1, self.keys.base(user_id), *script.argv(args))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def summaries_after(
        self, user_id: str, session_id: str, after: int, limit: int
    ) -> list[dict[str, Any]]:
        """Up to `limit` summaries after seq `after`, oldest first."""
        entries = await self.client.xrange(
            self.keys.summaries(user_id, session_id), f"0-{after + 1}", "+", count=limit
        )
        return [summary_from_entry(i, f) for i, f in entries]

    async def watchers(
        self, user_id: str, op: str, ids: list[str], lease_ms: int, max_watchers: int
    ) -> None:
        """Open, renew or close watcher slots of one user (watch.lua); opening one
        past `max_watchers` raises TooManyWatchers."""
        args = WatchArgs(op=op, lease_ms=lease_ms, max_watchers=max_watchers, ids=tuple(ids))
        await self._read(self.scripts.watch, user_id, args)


def _state(user_id: str, session_id: str, limit: int, read: FeedRead | Gone) -> FeedState | None:
    if isinstance(read, Gone):
        return None
    fields = read.fields
    return FeedState(
        session=_tagged(session_id, user_id, fields),
        kept=read.kept,
        messages=[message_from_entry(*entry) for entry in read.entries[:limit]],
        more=len(read.entries) > limit,
        latest_summary=int(fields.get("sy") or 0),
        expires_at_ms=int(fields.get("ea") or 0),
    )
