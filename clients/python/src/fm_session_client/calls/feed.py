"""The change feed's header-only form as a `Call` (the stream is read by `watch()`)."""

from __future__ import annotations

from fm_session_client import models
from fm_session_client.calls.core import Call, model_of, session_path


def poll_events(
    session_id: str,
    *,
    last_event_id: str | None = None,
    if_none_match: str | None = None,
    prefer: str | None = None,
    accept: str = "application/json",
) -> Call[models.FeedPoll]:
    """One header-only poll of `GET .../events` (docs/events.md): everything travels in
    headers because the gateways this form is for drop query strings. `prefer="wait=20"`
    holds the answer until a change (at most 25 s); `accept` must not ask for a stream."""
    headers = {"Accept": accept}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    if prefer is not None:
        headers["Prefer"] = prefer
    return Call(
        "GET",
        f"{session_path(session_id)}/events",
        model_of(models.FeedPoll),
        headers=headers,
        repeatable=True,
        ok=frozenset({200}),
    )
