"""One watcher of one session's change feed: what it has sent, and what to send next.

A watcher keeps a cursor (the last message id it sent), the session ETag and the
newest summary it showed. It is woken by the worker's subscription (feed.py) and
then re-reads the stored state after its cursor (feed.lua): the events it sends
come from storage, never from a notification, so a lost notification only delays
them and a duplicate one sends nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from session_service import errors
from session_service.domain.events import FeedEvent
from session_service.domain.ids import message_id, message_seq

if TYPE_CHECKING:
    from session_service.store.feed_reads import FeedOps, FeedState

#: How a watcher reads (user, session, after, limit): the store's `feed_state`, or the
#: hub's batcher, which shares one round trip among the watchers woken together.
Reader = Callable[[str, str, int, int], Awaitable["FeedState | None"]]

#: Messages (and summaries) read per wake; a longer backlog takes several reads, each
#: sent before the next is read, so a watcher never holds more than one page.
PAGE = 100
#: A seq above every message id (ids have ten digits): "no messages, just the check".
_END = 9_999_999_999
#: After a deadline that had not passed on Redis's clock yet, check again this much later.
_EXPIRY_RECHECK = 1.0


class Watcher:
    """A feed of `session_id` for `user_id`; `slot` names it in the user's watcher set."""

    __slots__ = (
        "_cases",
        "_expiry_check",
        "_since",
        "_woken",
        "cursor",
        "etag",
        "gone",
        "key",
        "read",
        "session_id",
        "slot",
        "store",
        "summary",
        "user_id",
    )

    def __init__(
        self,
        store: FeedOps,
        user_id: str,
        session_id: str,
        key: str,
        slot: str,
        read: Reader | None = None,
    ) -> None:
        self.store = store
        self.read: Reader = read or store.feed_state
        self.user_id = user_id
        self.session_id = session_id
        self.key = key
        self.slot = slot
        self.cursor = 0
        self.etag: str | None = None
        self.summary = 0
        self.gone = False
        self._woken = asyncio.Event()
        self._since: float | None = None
        self._cases = False
        self._expiry_check = 0.0

    def wake(self, committed_at: float | None = None, cases: bool = False) -> None:
        """A change may have happened (at `committed_at`, Redis time): read again."""
        if committed_at is not None and (self._since is None or committed_at < self._since):
            self._since = committed_at
        self._cases = self._cases or cases
        self._woken.set()

    async def open(self, after: int | None, if_none_match: str | None) -> list[FeedEvent]:
        """The events a feed starts with; SessionNotFound when there is no such session.

        `after` None: a `session` event with the current state (unless `if_none_match`
        names its ETag), then only what changes. `after` a seq: every message after
        it (a `rewound` event first when a rewind removed that message), and a
        `session` event only when `if_none_match` is given and no longer current.
        """
        if after is None:
            state = await self.store.feed_state(self.user_id, self.session_id, _END, 0)
            if state is None:
                raise errors.SessionNotFound()
            self.cursor = state.kept
            self.summary = state.latest_summary
            self._schedule_expiry(state)
            if if_none_match == state.session.etag:
                self.etag = state.session.etag
                return []
            self.etag = state.session.etag
            return [_session_event(state, None)]
        self.cursor = after
        events = await self.sync(opening=True, if_none_match=if_none_match)
        if self.gone:
            raise errors.SessionNotFound()
        return events

    async def sync(
        self, opening: bool = False, if_none_match: str | None = None
    ) -> list[FeedEvent]:
        """Read the stored state after the cursor and answer what changed since."""
        since, cases = self._since, self._cases
        self._since, self._cases = None, False
        state = await self.read(self.user_id, self.session_id, self.cursor, PAGE)
        if state is None:
            self.gone = True
            return [FeedEvent("deleted", {"session_id": self.session_id}, committed_at=since)]
        events: list[FeedEvent] = []
        if self.cursor > 0 and state.kept < self.cursor:
            # A rewind removed messages this watcher was sent: it cuts back first.
            self.cursor = state.kept
            data = {
                "session_id": self.session_id,
                "last_message_id": message_id(state.kept) if state.kept else None,
            }
            events.append(FeedEvent("rewound", data, committed_at=since))
        for message in state.messages:
            events.append(FeedEvent("message", message, message["message_id"], since))
        if state.messages:
            self.cursor = message_seq(state.messages[-1]["message_id"]) or self.cursor
        if opening:
            self.summary = state.latest_summary
        elif state.latest_summary > self.summary:
            for summary in await self.store.summaries_after(
                self.user_id, self.session_id, self.summary, PAGE
            ):
                events.append(FeedEvent("summary", summary, committed_at=since))
            self.summary = state.latest_summary
        else:
            self.summary = state.latest_summary  # a rewind removed summaries
        etag = state.session.etag
        if opening:
            if if_none_match is not None and if_none_match != etag:
                events.append(_session_event(state, since))
        elif etag != self.etag or cases:
            events.append(_session_event(state, since))
        self.etag = etag
        self._schedule_expiry(state)
        if state.more:
            self.wake(since)  # the next page goes out on the next turn, after this one
        return events

    async def next(self, within: float) -> list[FeedEvent] | None:
        """The events of the next change, or None when `within` seconds pass without one.

        Also wakes at the session's deadline: expiry deletes it without a script, so
        without a notification.
        """
        if not self._woken.is_set():
            wait = within
            expiry = self._expiry_check - time.time()
            if self._expiry_check and expiry < wait:
                wait = max(expiry, 0.0)
            try:
                async with asyncio.timeout(wait):
                    await self._woken.wait()
            except TimeoutError:
                if not self._expiry_check or time.time() < self._expiry_check:
                    return None
        self._woken.clear()
        return await self.sync()

    def _schedule_expiry(self, state: FeedState) -> None:
        deadline = state.expires_at_ms / 1000 if state.expires_at_ms else 0.0
        if deadline and deadline <= time.time():
            # Still there past its deadline by this clock: Redis's clock is behind ours.
            deadline = time.time() + _EXPIRY_RECHECK
        self._expiry_check = deadline


def _session_event(state: FeedState, since: float | None) -> FeedEvent:
    data: dict[str, Any] = {"etag": state.session.etag, "session": dict(state.session)}
    return FeedEvent("session", data, committed_at=since)
