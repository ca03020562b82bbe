"""Records in the original fm-session-service's format, written as it wrote them:
one JSON string per session under ``session:{id}`` with the session TTL, the id
added to the set ``user_sessions:{user_id}``, in db 1 by default."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from session_legacy.records import Bounds, LegacySession, read_record

LEGACY_DB = 1
WEEK = 7 * 86400


def at(minutes_ago: float) -> datetime:
    """A timestamp on a whole millisecond, as this service keeps them."""
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat()  # the original's `datetime.isoformat()`: +00:00


def service_iso(moment: datetime) -> str:
    """The same instant as this service writes it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def message(role: str, content: str, when: datetime, **metadata: Any) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "role": role,
        "content": content,
        "timestamp": iso(when),
        "metadata": metadata,
    }


def record(
    user_id: str,
    *,
    title: str | None = None,
    status: str = "active",
    client_id: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    created: datetime | None = None,
    last_activity: datetime | None = None,
    session_id: str | None = None,
) -> dict[str, Any]:
    created = created or at(60)
    last_activity = last_activity or at(5)
    return {
        "session_id": session_id or str(uuid.uuid4()),
        "user_id": user_id,
        "title": title,
        "client_id": client_id,
        "created_at": iso(created),
        "updated_at": iso(last_activity),
        "last_activity_at": iso(last_activity),
        "status": status,
        "context": context or {},
        "messages": messages or [],
        "metadata": {"session_type": "troubleshooting", "timeout_minutes": 180}
        if metadata is None
        else metadata,
    }


async def write(source: Redis, data: dict[str, Any], ttl: int | None = WEEK) -> str:
    """Store a record as the original did; its session id."""
    import json

    key = f"session:{data['session_id']}"
    await source.set(key, json.dumps(data), ex=ttl)
    await source.sadd(f"user_sessions:{data['user_id']}", data["session_id"])
    return str(data["session_id"])


#: The bounds the import reads records with in the tests (the service's defaults).
BOUNDS = Bounds(
    max_message_bytes=65536,
    max_messages=100000,
    min_timeout_minutes=1,
    max_timeout_minutes=10080,
    default_timeout_ms=86_400_000,
)


def legacy(user_id: str, count: int) -> LegacySession:
    """A parsed legacy session of `user_id` with `count` messages."""
    data = record(
        user_id, title="t", messages=[message("user", f"m{n}", at(1)) for n in range(count)]
    )
    parsed = read_record(f"session:{data['session_id']}", json.dumps(data).encode(), BOUNDS)
    assert isinstance(parsed, LegacySession), parsed
    return parsed
