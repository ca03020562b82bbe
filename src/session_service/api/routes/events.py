"""The session change feed: Server-Sent Events, or a header-only long poll.

Both forms share one path and one watcher: `Accept: text/event-stream` holds a
stream; anything else answers JSON once, at once when there is something after
`Last-Event-ID`, else when the next change happens or `Prefer: wait=N` passes.
The poll form needs no query string and no streaming, for gateways that read
responses whole and drop query strings.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from session_service import errors
from session_service.api.deps import FeedDep, IfNoneMatchDep, SessionIdDep, SettingsDep, UserDep
from session_service.api.responses import error_responses, json_response
from session_service.api.stream import EventStream, record_sent
from session_service.domain import models
from session_service.domain.events import MAX_POLL_WAIT_SECONDS, FeedEvent
from session_service.domain.ids import message_id, message_seq
from session_service.observability import metrics
from session_service.store import FeedHub, Watcher

router = APIRouter(prefix="/api/v1/sessions/{session_id}", tags=["events"])

_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d{1,6})\"?", re.IGNORECASE)
_START = "msg_0000000000"

_DESCRIPTION = f"""The session's changes as they happen (docs/events.md has the wire format).

With `Accept: text/event-stream`: a Server-Sent Events stream. Events: `message` (the
stored message as GET .../messages/{{id}} answers it; its SSE `id` is its `message_id`),
`summary` (a new summary), `session` (`{{"etag", "session"}}`: the session as GET answers
it, after any change; bursts coalesce), `rewound` (`{{"last_message_id"}}`: a rewind removed
messages after it) and `deleted` (the stream then ends). Without `Last-Event-ID` the stream
opens with a `session` event; with `Last-Event-ID: msg_…` it first sends every message after
that one, with no gap and no duplicate (`{_START}`: from the first). A `: keep-alive`
comment every EVENTS_HEARTBEAT_SECONDS; `retry:` hints open the stream and end it when
the instance shuts down.

Otherwise (`Accept: application/json`, for proxies that buffer): `{{"events": [...],
"last_event_id": ...}}` at once when events after `Last-Event-ID` exist, else as soon as
one happens, or after `Prefer: wait=N` seconds (at most {MAX_POLL_WAIT_SECONDS}; 0 without
it) with none. Send `last_event_id` back as `Last-Event-ID` and the `ETag` as
`If-None-Match` to miss nothing between two polls.

Another user's or an unknown session is a 404 before anything is held. A user holds at
most MAX_WATCHERS_PER_USER feeds at once (429 `too_many_watchers`); a worker at most
MAX_WATCHERS_PER_WORKER (503 `feed_unavailable`, also while it shuts down)."""


def wants_stream(accept: str | None) -> bool:
    """Whether the client asked for Server-Sent Events (an EventSource does)."""
    return accept is not None and "text/event-stream" in accept.lower()


def cursor(last_event_id: str | None) -> int | None:
    """The message seq a feed resumes after; None: from now."""
    if last_event_id is None:
        return None
    value = last_event_id.strip()
    if value == _START:
        return 0
    seq = message_seq(value)
    if seq is None:
        raise errors.InvalidRequest(
            f"Last-Event-ID must be a message id (msg_ and ten digits, {_START} for the start)",
            field="Last-Event-ID",
        )
    return seq


def poll_wait(prefer: str | None) -> int | None:
    """`Prefer: wait=N` (RFC 7240) in seconds, capped; None when not asked for."""
    if prefer is None:
        return None
    found = _WAIT.search(prefer)
    return min(int(found.group(1)), MAX_POLL_WAIT_SECONDS) if found else None


@router.get(
    "/events",
    summary="Watch a session's changes (SSE, or a header-only long poll)",
    description=_DESCRIPTION,
    response_model=models.FeedPoll,
    responses={
        200: {
            "description": "The events (JSON), or a `text/event-stream`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(errors.SessionNotFound, errors.TooManyWatchers, errors.FeedUnavailable),
    },
)
async def session_events(
    session_id: SessionIdDep,
    user: UserDep,
    feed: FeedDep,
    settings: SettingsDep,
    accept: Annotated[str | None, Header(alias="Accept")] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description=f"Resume after this message id (`{_START}`: from the first)",
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description=f"`wait=N`: a JSON poll waits up to N s (at most {MAX_POLL_WAIT_SECONDS})",
        ),
    ] = None,
    if_none_match: IfNoneMatchDep = None,
) -> Response:
    after = cursor(last_event_id)
    wait = poll_wait(prefer)
    watcher, events = await feed.watch(user.user_id, session_id, after, if_none_match)
    if wants_stream(accept):
        return EventStream(feed, watcher, events, settings.events_heartbeat_seconds)
    metrics.FEED_WATCHERS.inc()
    try:
        events = await _poll(feed, watcher, events, wait or 0)
    finally:
        metrics.FEED_WATCHERS.dec()
        await feed.release(watcher)
    record_sent(events)
    headers = {"Cache-Control": "no-store"}
    if watcher.etag is not None:
        headers["ETag"] = watcher.etag
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait}"
    body = {"events": [e.as_json() for e in events], "last_event_id": message_id(watcher.cursor)}
    return json_response(body, headers=headers)


async def _poll(
    feed: FeedHub, watcher: Watcher, events: list[FeedEvent], wait: int
) -> list[FeedEvent]:
    """The opening events, else the first change within `wait` seconds."""
    if events or wait <= 0:
        return events
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not watcher.gone and not feed.closing:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        got = await watcher.next(remaining)
        if got:
            return got
    return []
