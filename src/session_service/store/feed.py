"""The worker's side of the change feed: one subscription that wakes every watcher.

Every writing script publishes a notification on the prefix's feed channel in the
same atomic step as its write (lib.lua's `notify`). Each worker holds exactly one
subscription to that channel, on a connection of its own, and wakes the watchers
of the session a notification names; no watcher holds a Redis connection.

Notifications only wake: a watcher re-reads the stored state after its cursor
(watch.py). When the subscription drops (a failover, a restart, a network fault)
every watcher is woken again once it is back, so anything committed while no
notification could arrive is read then; nothing is lost, at worst delayed.

Bounds: MAX_WATCHERS_PER_USER across every worker and instance (a lease per watcher
in the user's `v` set, renewed every heartbeat) and MAX_WATCHERS_PER_WORKER here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

from redis.exceptions import RedisError

from session_service import errors
from session_service.domain.events import FeedEvent
from session_service.observability.metrics import FEED_UNSUBSCRIBED
from session_service.store.cancellation import raise_if_cancelled
from session_service.store.connection.subscriber import subscriber
from session_service.store.feed_reads import FeedOps, FeedState
from session_service.store.keys import encode_user
from session_service.store.watch import Watcher

logger = logging.getLogger("session_service.store")

#: An idle subscription sends PING this often, and is given up when the PONG is this late.
PING_SECONDS = 5.0


class FeedHub:
    """Every watcher of one worker, and the one subscription that wakes them."""

    def __init__(
        self,
        store: FeedOps,
        *,
        heartbeat: float,
        max_per_user: int,
        max_per_worker: int,
    ) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.max_per_user = max_per_user
        self.max_per_worker = max_per_worker
        # A lease outlives three missed renewals: a crashed worker's slots lapse by themselves.
        self.lease_ms = int((3 * heartbeat + 5) * 1000)
        self.channel = store.keys.feed_channel()
        self.closing = False
        self.subscribed = asyncio.Event()
        # This hub's 1 in fm_session_feed_unsubscribed_workers, while it runs unsubscribed.
        self._counted_unsubscribed = False
        self._by_session: dict[str, set[Watcher]] = defaultdict(set)
        self._count = 0
        self._ids = itertools.count(1)
        self._prefix = secrets.token_hex(6)
        self._tasks: list[asyncio.Task[None]] = []
        self._connection: Any = None
        self._flushes: set[asyncio.Future[None]] = set()
        self._reads: list[tuple[tuple[str, str, int, int], asyncio.Future[FeedState | None]]] = []

    def __len__(self) -> int:
        return self._count

    def _count_unsubscribed(self, unsubscribed: bool) -> None:
        if unsubscribed == self._counted_unsubscribed:
            return
        if unsubscribed:
            FEED_UNSUBSCRIBED.inc()
        else:
            FEED_UNSUBSCRIBED.dec()
        self._counted_unsubscribed = unsubscribed

    def start(self) -> None:
        self._count_unsubscribed(True)
        self._tasks = [
            asyncio.create_task(self._subscribe_forever()),
            asyncio.create_task(self._renew_forever()),
        ]

    async def close(self) -> None:
        self.shutdown()
        for task in self._tasks:
            task.cancel()
        if self._connection is not None:
            # A read in progress may not notice the cancellation (raise_if_cancelled):
            # closing its connection ends it at once.
            with contextlib.suppress(Exception):
                await self._connection.disconnect(nowait=True)
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._count_unsubscribed(False)  # a closed hub is no worker's feed

    def shutdown(self) -> None:
        """A graceful shutdown began: every feed ends now (with a retry hint) and no
        new one opens, so clients reconnect to another instance."""
        self.closing = True
        for watchers in self._by_session.values():
            for watcher in watchers:
                watcher.wake()

    async def watch(
        self, user_id: str, session_id: str, after: int | None, if_none_match: str | None
    ) -> tuple[Watcher, list[FeedEvent]]:
        """A new watcher and the events its feed opens with.

        The order answers for the guarantees: the watcher is registered before its
        first read (a change in between wakes it), the session is read before a slot
        is taken (another user's session is a 404, never a 429).
        """
        if self.closing or self._count >= self.max_per_worker:
            raise errors.FeedUnavailable()
        key = f"{encode_user(user_id)} {session_id}"
        slot = f"{self._prefix}.{os.getpid()}.{next(self._ids)}"
        watcher = Watcher(self.store, user_id, session_id, key, slot, self.read)
        self._by_session[key].add(watcher)
        self._count += 1
        try:
            events = await watcher.open(after, if_none_match)
            await self.store.watchers(user_id, "open", [slot], self.lease_ms, self.max_per_user)
        except BaseException:
            self._forget(watcher)
            raise
        return watcher, events

    def read(
        self, user_id: str, session_id: str, after: int, limit: int
    ) -> asyncio.Future[FeedState | None]:
        """A watcher's read, sent with those of every watcher woken in the same turn of
        the event loop: one notification burst, one round trip."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[FeedState | None] = loop.create_future()
        if not self._reads:
            loop.call_soon(lambda: self._track(asyncio.ensure_future(self._send_reads())))
        self._reads.append(((user_id, session_id, after, limit), future))
        return future

    def _track(self, task: asyncio.Future[None]) -> None:
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _send_reads(self) -> None:
        reads, self._reads = self._reads, []
        if len(reads) == 1:
            ((request, future),) = reads
            await _settle(future, self.store.feed_state(*request))
            return
        try:
            states = await self.store.feed_states([request for request, _ in reads])
        except Exception as exc:  # the pipeline as a whole failed: each alone says why
            states = [exc] * len(reads)
        for (request, future), state in zip(reads, states, strict=True):
            if isinstance(state, Exception):
                await _settle(future, self.store.feed_state(*request))
            elif not future.done():
                future.set_result(state)

    async def release(self, watcher: Watcher) -> None:
        """The feed ended: free its slot (best effort: an unfreed one lapses with its lease)."""
        self._forget(watcher)
        with contextlib.suppress(RedisError, errors.ServiceError):
            await self.store.watchers(
                watcher.user_id, "close", [watcher.slot], self.lease_ms, self.max_per_user
            )

    def _forget(self, watcher: Watcher) -> None:
        watchers = self._by_session.get(watcher.key)
        if watchers is None or watcher not in watchers:
            return
        watchers.discard(watcher)
        self._count -= 1
        if not watchers:
            del self._by_session[watcher.key]

    def dispatch(self, payload: str) -> None:
        """One notification: `<user tag> <sid> <kind> <Redis time in µs>`."""
        tag, _, rest = payload.partition(" ")
        sid, _, rest = rest.partition(" ")
        watchers = self._by_session.get(f"{tag} {sid}")
        if not watchers:
            return
        kind, _, micros = rest.partition(" ")
        committed_at = int(micros) / 1e6 if micros.isdigit() else None
        for watcher in watchers:
            watcher.wake(committed_at, cases=kind == "k")

    def _wake_all(self) -> None:
        for watchers in self._by_session.values():
            for watcher in watchers:
                watcher.wake()

    async def _subscribe_forever(self) -> None:
        attempt = 0
        while True:
            connection: Any = None
            try:
                connection = self._connection = await subscriber(self.store.client, attempt)
                await connection.connect()
                await connection.send_command("SUBSCRIBE", self.channel)
                reply = await connection.read_response(push_request=True)
                if not isinstance(reply, list) or reply[:1] != ["subscribe"]:
                    raise RedisError(f"SUBSCRIBE answered {reply!r}")
                attempt = 0
                self.subscribed.set()
                self._count_unsubscribed(False)
                # Whatever was committed while no notification could arrive is read now.
                self._wake_all()
                await self._listen(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: the feed must come back, never die
                if self.subscribed.is_set() or attempt == 0:
                    logger.warning(
                        "change feed subscription lost (%s); watchers resume from their "
                        "last id once it is back",
                        type(exc).__name__,
                    )
            finally:
                self.subscribed.clear()
                self._count_unsubscribed(not self.closing)
                self._connection = None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.disconnect()
            raise_if_cancelled()
            attempt += 1
            await asyncio.sleep(min(0.05 * 2 ** min(attempt, 5), 1.0))

    async def _listen(self, connection: Any) -> None:
        pinged = False
        while True:
            # Messages are RESP3 pushes; a PONG is a plain reply. Either shows it is alive.
            message = await connection.read_response(timeout=PING_SECONDS, push_request=True)
            raise_if_cancelled()
            if message is None:
                if pinged:
                    raise RedisError("the feed subscription stopped answering")
                await connection.send_command("PING")
                pinged = True
                continue
            pinged = False
            if isinstance(message, list) and message[0] == "message":
                self.dispatch(message[2])

    async def _renew_forever(self) -> None:
        while True:
            raise_if_cancelled()
            await asyncio.sleep(self.heartbeat)
            by_user: dict[str, list[str]] = defaultdict(list)
            for watchers in self._by_session.values():
                for watcher in watchers:
                    by_user[watcher.user_id].append(watcher.slot)
            for user_id, slots in by_user.items():
                try:
                    await self.store.watchers(
                        user_id, "renew", slots, self.lease_ms, self.max_per_user
                    )
                except (RedisError, errors.ServiceError) as exc:
                    raise_if_cancelled()
                    logger.debug("watcher lease renewal failed: %s", type(exc).__name__)


async def _settle(
    future: asyncio.Future[FeedState | None], read: Awaitable[FeedState | None]
) -> None:
    try:
        state = await read
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(state)
