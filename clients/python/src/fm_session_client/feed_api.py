# Written by clients/python/unasync.py from aio_feed_api.py: edit that module, then run
# `make client-sync`. tests/client/test_unasync.py fails when this file is stale.
"""`SessionClient.watch()`: the change feed as an iterator of typed events (feed.py
keeps the state; this module only sends, reads and sleeps)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Generator, Iterator
from typing import TypeVar

import httpx

from fm_session_client import base, calls, feed, models
from fm_session_client.calls import Call

T = TypeVar("T")


class FeedApi:
    """The feed half of `SessionClient` (its `_http`, `settings`, `_rng`, `_run`)."""

    _http: httpx.Client
    settings: base.Settings
    _rng: random.Random

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def poll_events(
        self,
        session_id: str,
        *,
        last_event_id: str | None = None,
        if_none_match: str | None = None,
        prefer: str | None = None,
        accept: str = "application/json",
    ) -> models.FeedPoll:
        """One header-only poll of the change feed (docs/events.md); `watch()` loops it."""
        return self._run(
            calls.poll_events(
                session_id,
                last_event_id=last_event_id,
                if_none_match=if_none_match,
                prefer=prefer,
                accept=accept,
            )
        )

    def watch(
        self,
        session_id: str,
        last_event_id: str | None = None,
        *,
        mode: feed.WatchMode = "auto",
        poll_wait: int = 20,
        idle_timeout: float = 60.0,
    ) -> Iterator[feed.FeedEvent]:
        """Every change of the session as typed events, until it is deleted (docs/client.md).

        Streams (SSE) and, when the stream is cut, reconnects by itself after the server's
        `retry:` hint with Last-Event-ID = the last message yielded: no gap, no duplicate.
        `mode="auto"` falls back to the header-only long poll when the answer is not a
        stream or streams are cut `feed.CUTS_BEFORE_POLLING` times in a row with nothing
        delivered; `"poll"` always polls (`Prefer: wait=poll_wait`); `"stream"` never does.
        Without `last_event_id` it starts with the session's current state. A stream
        quiet for `idle_timeout` seconds (heartbeats count) is taken as cut.
        """
        watcher = feed.Watcher(session_id, last_event_id, mode, poll_wait)
        probe = calls.poll_events(session_id)
        if last_event_id is None:
            # Where "now" is: the current state and the newest message id as the cursor,
            # so a reconnect replays from there even when no message was yielded yet.
            yield from watcher.polled(self._run(probe))
        while not watcher.done:
            with contextlib.closing(self._watch_once(watcher, probe, idle_timeout)) as once:
                yield from once

    def _watch_once(
        self, watcher: feed.Watcher, probe: Call[models.FeedPoll], idle_timeout: float
    ) -> Generator[feed.FeedEvent, None]:
        """One request: a stream until it ends, or one poll; then the wait before the next."""
        stream = not watcher.polling
        timeout = httpx.Timeout(
            idle_timeout if stream else watcher.poll_wait + idle_timeout,
            connect=self.settings.retry.connect_timeout,
        )
        request = self._http.build_request(
            "GET", probe.path, headers=watcher.headers(stream), timeout=timeout
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            self._after_failure(watcher, error, probe)
            return
        parser = feed.SseParser()
        delivered = False
        try:
            if response.status_code != 200:
                response.read()
                gone = watcher.vanished(response)
                if gone is not None:
                    yield gone
                    return
                self._after_failure(watcher, response, probe)
                return
            watcher.failures = 0
            watcher.opened = True
            if not stream:
                try:
                    response.read()
                except httpx.TransportError as error:
                    self._after_failure(watcher, error, probe)
                    return
                yield from watcher.polled(probe.parse(response))
                return
            if not watcher.is_stream(response):
                return  # `auto` polls from now on
            try:
                for line in response.iter_lines():
                    raw = parser.feed(line)
                    got = None if raw is None else watcher.accept(raw[0], feed.decode(raw[1]))
                    if got is not None:
                        delivered = True
                        yield got
                        if watcher.done:
                            return
            except httpx.TransportError:
                pass  # cut: reconnect below, from the cursor
        finally:
            response.close()
        time.sleep(watcher.stream_ended(delivered, parser))

    def _after_failure(
        self,
        watcher: feed.Watcher,
        failure: httpx.Response | httpx.TransportError,
        probe: Call[models.FeedPoll],
    ) -> None:
        """Wait before trying again, or raise the failure when it is final."""
        wait = watcher.failed(failure, self.settings.retry, self._rng)
        if wait is None:
            raise base.gave_up(failure, probe)
        time.sleep(wait)
