"""The change feed as typed events, and the bookkeeping `watch()` shares between clients.

`Watcher` holds no I/O: it builds each request's headers, parses Server-Sent Events
line by line, types each event, drops message ids already yielded, and decides what
to do when a stream ends (reconnect, fall back to the header-only poll, or stop). The
sync (feed_api.py) and async (aio_feed_api.py) loops only send and sleep.

No gap and no duplicate: the cursor is the newest message id yielded (message ids only
grow, and a rewind never reuses one), sent as Last-Event-ID on every reconnect; the
service replays every message after it. The session's ETag goes as If-None-Match, so
a state change missed while disconnected comes back as a `session` event.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from fm_session_client import errors, models
from fm_session_client import retry as retry_module

WatchMode = Literal["auto", "stream", "poll"]

#: Streams cut in a row without delivering an event before `auto` falls back to polls.
CUTS_BEFORE_POLLING = 3
#: Answers worth trying again: refused for now, or a proxy's or the service's outage.
_TRANSIENT = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True)
class MessageEvent:
    """A message was appended (`message` is as GET .../messages/{id} answers it)."""

    message: models.Message
    kind: Literal["message"] = "message"


@dataclass(frozen=True)
class SummaryEvent:
    """A summary was written."""

    summary: models.Summary
    kind: Literal["summary"] = "summary"


@dataclass(frozen=True)
class SessionEvent:
    """What the session shows changed; `session.etag` is its ETag (for `if_match=`)."""

    session: models.Session
    kind: Literal["session"] = "session"


@dataclass(frozen=True)
class RewoundEvent:
    """A rewind removed messages: drop every message after `last_message_id` (None: all)."""

    session_id: str
    last_message_id: str | None
    kind: Literal["rewound"] = "rewound"


@dataclass(frozen=True)
class DeletedEvent:
    """The session was deleted or expired; `watch()` ends after it."""

    session_id: str
    kind: Literal["deleted"] = "deleted"


FeedEvent = MessageEvent | SummaryEvent | SessionEvent | RewoundEvent | DeletedEvent


def typed(kind: str, data: dict[str, Any]) -> FeedEvent | None:
    """The typed event; None for a kind this client does not know (a newer service)."""
    if kind == "message":
        return MessageEvent(models.Message.model_validate(data))
    if kind == "summary":
        return SummaryEvent(models.Summary.model_validate(data))
    if kind == "session":
        session = models.Session.model_validate(data["session"])
        return SessionEvent(session.model_copy(update={"etag": data.get("etag")}))
    if kind == "rewound":
        return RewoundEvent(str(data.get("session_id", "")), data.get("last_message_id"))
    if kind == "deleted":
        return DeletedEvent(str(data.get("session_id", "")))
    return None


class SseParser:
    """Server-Sent Events, line by line (the HTML standard's rules, minus what the
    service never sends): `event:`, `id:`, `data:` (lines joined), `retry:`, `:` comments."""

    def __init__(self) -> None:
        self.kind = ""
        self.data: list[str] = []
        #: The server's `retry:` hint, in seconds.
        self.retry: float | None = None

    def feed(self, line: str) -> tuple[str, str] | None:
        """One line; an (event, data) pair when a blank line dispatches one."""
        if line == "":
            if not self.data:
                self.kind = ""
                return None
            event = (self.kind or "message", "\n".join(self.data))
            self.kind, self.data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.kind = value
        elif name == "data":
            self.data.append(value)
        elif name == "retry" and value.isdigit():
            self.retry = int(value) / 1000
        # `id:` is not needed: a message's id is its message_id, inside its data.
        return None


class Watcher:
    """One `watch()`'s state: cursor, ETag, mode, and what a cut stream leads to."""

    def __init__(
        self, session_id: str, last_event_id: str | None, mode: WatchMode, poll_wait: int
    ) -> None:
        self.session_id = session_id
        #: Whether a request was answered: a 404 after it means the session is gone.
        self.opened = False
        self.cursor = last_event_id
        #: The newest message id yielded: anything at or below it is a duplicate.
        self.newest = last_event_id
        self.etag: str | None = None
        self.polling = mode == "poll"
        self.mode = mode
        self.poll_wait = poll_wait
        self.cuts = 0
        self.failures = 0
        self.retry = 1.0
        self.done = False

    def headers(self, stream: bool) -> dict[str, str]:
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if self.cursor is not None:
            headers["Last-Event-ID"] = self.cursor
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
        if not stream:
            headers["Prefer"] = f"wait={self.poll_wait}"
        return headers

    def accept(self, kind: str, data: dict[str, Any]) -> FeedEvent | None:
        """The event to yield, or None (a duplicate or an unknown kind); moves the cursor."""
        event = typed(kind, data)
        if isinstance(event, MessageEvent):
            message_id = event.message.message_id
            if self.newest is not None and message_id <= self.newest:
                return None
            self.newest = self.cursor = message_id
        elif isinstance(event, SessionEvent):
            self.etag = event.session.etag
        elif isinstance(event, DeletedEvent):
            self.done = True
        return event

    def is_stream(self, response: httpx.Response) -> bool:
        """Whether a 200 is really a stream; if not (a gateway turned it into something
        else), `auto` polls from now on and `stream` gives up."""
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "text/event-stream":
            return True
        if self.mode == "stream":
            raise errors.SessionServiceError(
                f"watch(mode='stream'): the answer is {media or 'untyped'}, not a stream"
            )
        self.polling = True
        return False

    def stream_ended(self, delivered: bool, parser: SseParser) -> float:
        """A stream ended without `deleted`: seconds to wait before reconnecting. After
        CUTS_BEFORE_POLLING cuts in a row with no event, `auto` polls instead."""
        if parser.retry is not None:
            self.retry = min(parser.retry, 30.0)
        self.cuts = 0 if delivered else self.cuts + 1
        if self.mode == "auto" and self.cuts >= CUTS_BEFORE_POLLING:
            self.polling = True
            return 0.0
        return self.retry

    def failed(
        self,
        failure: httpx.Response | httpx.TransportError,
        policy: retry_module.RetryPolicy,
        rng: random.Random,
    ) -> float | None:
        """Seconds to wait after a failed request (no answer, 429, 502-504), or None:
        give up (another error answer, or `policy.max_attempts` failures in a row)."""
        self.failures += 1
        if self.failures >= policy.max_attempts:
            return None
        if isinstance(failure, httpx.Response) and failure.status_code not in _TRANSIENT:
            return None
        return retry_module.wait_before_retry(policy, self.failures - 1, failure, float("inf"), rng)

    def vanished(self, response: httpx.Response) -> DeletedEvent | None:
        """A 404 once the feed was open: the session was deleted or expired while no
        request was held (between two polls, or while reconnecting), so the `deleted`
        event was never sent. It ends the watch as that event would."""
        if not self.opened or response.status_code != 404:
            return None
        self.done = True
        return DeletedEvent(self.session_id)

    def polled(self, page: models.FeedPoll) -> list[FeedEvent]:
        """A poll's events to yield, in order; the cursor and ETag for the next poll."""
        self.opened = True
        events = [e for body in page.events if (e := self.accept(body.event, body.data))]
        if self.newest is None or page.last_event_id > self.newest:
            self.cursor = page.last_event_id
        if page.etag is not None:
            self.etag = page.etag
        return events


def decode(data: str) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"an event's data is not an object: {data[:80]!r}")
    return value
