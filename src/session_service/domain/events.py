"""The change feed's events (issue 24): what a watcher of a session is sent.

Only `message` events carry an id (the message's `message_id`): the stored
messages are what a watcher resumes from (`Last-Event-ID`), everything else is
the current state, re-read whenever a watcher wakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

EventKind = Literal["message", "summary", "session", "rewound", "deleted"]
EVENT_KINDS: tuple[EventKind, ...] = ("message", "summary", "session", "rewound", "deleted")

#: The longest a header-only poll may wait (`Prefer: wait=N`); the gateway gives up at 30 s.
MAX_POLL_WAIT_SECONDS = 25


@dataclass(frozen=True, slots=True)
class FeedEvent:
    kind: EventKind
    data: dict[str, Any]
    #: The SSE `id`: a message event's `message_id`, else None (the cursor stays).
    id: str | None = None
    #: Redis time (Unix seconds) of the earliest commit the watcher woke for, or None
    #: for events of a replay; delivery latency is measured from it.
    committed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The event in a header-only poll's `events` list."""
        return {"event": self.kind, "id": self.id, "data": self.data}
