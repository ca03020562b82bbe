"""The recorded history: every request a model client sent, its answer and its times.

An operation's outcome is one of three, as in Jepsen:

- `ok`: a 2xx answer; the write happened, exactly once.
- `fail`: a 4xx answer (other than 408 and 429, which say nothing about the write); the
  write did not happen.
- `info`: a 5xx, a lost connection, or a request cut short by a killed instance: the write
  may or may not have happened, and the checker must allow both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

OK, FAIL, INFO = "ok", "fail", "info"

#: Operations that change state (everything else only reads).
WRITES = frozenset(
    {
        "create", "update", "status", "archive", "restore", "append", "batch", "summary",
        "fork", "rewind", "delete", "delete_all", "erase", "heartbeat", "link", "unlink",
    }
)  # fmt: skip


@dataclass
class Op:
    """One request and its answer; `start` and `end` on one monotonic clock (seconds)."""

    index: int
    client: int
    instance: int
    kind: str
    user: str
    sid: str | None
    args: dict[str, Any]
    start: float
    end: float = 0.0
    status: int | None = None
    body: Any = None
    etag: str | None = None
    error: str | None = None
    walk: int | None = None  # pages of one search or list walk, or polls of one feed
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.status is None or self.status >= 500 or self.status in (408, 429):
            return INFO
        return OK if self.status < 300 else FAIL

    @property
    def possible(self) -> bool:
        """The write may have happened (acknowledged, or its answer is unknown)."""
        return self.outcome != FAIL

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def code(self) -> str | None:
        if isinstance(self.body, dict):
            value = self.body.get("code")
            return value if isinstance(value, str) else None
        return None

    def describe(self, origin: float = 0.0) -> str:
        """One line: times, client, operation, arguments and the answer in short."""
        answer = self.error or f"{self.status} {self.code() or ''}".strip()
        brief = _brief(self.body) if self.outcome == OK else ""
        target = f" {self.sid}" if self.sid else ""
        args = json.dumps(self.args, sort_keys=True, default=str)
        return (
            f"#{self.index:<5} [{self.start - origin:8.3f} .. {self.end - origin:8.3f}] "
            f"c{self.client}@i{self.instance} {self.kind:<10} {self.user}{target} {args} "
            f"-> {self.outcome} {answer}{brief}"
        )


def _brief(body: Any) -> str:
    """The parts of an answer a reader of a violation needs (ids, counts)."""
    if not isinstance(body, dict):
        return ""
    out = []
    message = body.get("message")
    if isinstance(message, dict):
        out.append(f"message_id={message.get('message_id')}")
    for name in ("session_id", "summary_id", "removed", "last_message_id", "deleted",
                 "deleted_sessions", "status", "session_resumed", "total"):  # fmt: skip
        if name in body and not (name == "session_id" and isinstance(message, dict)):
            out.append(f"{name}={body[name]}")
    sessions = body.get("sessions")
    if isinstance(sessions, list):
        out.append("sessions=" + ",".join(str(s.get("session_id")) for s in sessions))
    summaries = body.get("summaries")
    if isinstance(summaries, list):
        out.append("summaries=" + ",".join(str(s.get("summary_id")) for s in summaries))
    messages = body.get("messages")
    if isinstance(messages, list):
        out.append("messages=" + ",".join(str(m.get("message_id")) for m in messages))
    events = body.get("events")
    if isinstance(events, list):
        out.append("events=" + ",".join(_event(e) for e in events if isinstance(e, dict)))
        out.append(f"last_event_id={body.get('last_event_id')}")
    return " (" + " ".join(out) + ")" if out else ""


def _event(event: dict[str, Any]) -> str:
    """A feed event in short: its kind, and what it names."""
    data = event.get("data") or {}
    if event.get("event") == "message":
        return f"message:{event.get('id')}"
    if event.get("event") == "summary":
        return f"summary:{data.get('summary_id')}"
    if event.get("event") == "rewound":
        return f"rewound:{data.get('last_message_id')}"
    if event.get("event") == "session":
        return f"session:{data.get('etag')}"
    return str(event.get("event"))
