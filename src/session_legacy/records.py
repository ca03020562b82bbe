"""Reading one record of the original fm-session-service, without guessing.

The original kept each session as one JSON string under ``session:{session_id}``
(its ``SessionData``: session_id, user_id, title, client_id, created_at,
updated_at, last_activity_at, status, context, messages, metadata; timestamps
ISO 8601 with a UTC offset; messages with message_id, role, content, timestamp,
metadata), with a remaining TTL. `read_record` turns it into what this service
stores, or into a reason: `Skip` for a record that is readable but must not be
imported (deleted, over a bound), `Unreadable` for one that cannot be read as
that format. Nothing is truncated, defaulted from a wrong value or repaired,
except that message timestamps are made non-decreasing, as this service keeps them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from session_service.domain.ids import SESSION_ID_RE
from session_service.domain.models import (
    MAX_TITLE,
    check_json_object,
)
from session_service.domain.status import ALL_STATUSES

KEY_PREFIX = "session:"
USER_INDEX_PREFIX = "user_sessions:"
MAX_USER_ID = 256
DEFAULT_SESSION_TYPE = "troubleshooting"
# The original service's roles: a `tool` message needs a tool_call_id it never had.
_ROLES = frozenset({"user", "assistant", "system"})
_REQUIRED = ("session_id", "user_id", "created_at", "updated_at", "last_activity_at")


@dataclass(frozen=True, slots=True)
class Bounds:
    """The service's own limits an imported session must respect."""

    max_message_bytes: int
    max_messages: int
    min_timeout_minutes: int
    max_timeout_minutes: int
    default_timeout_ms: int


@dataclass(frozen=True, slots=True)
class LegacyMessage:
    role: str
    content: str
    timestamp_ms: int
    metadata_json: str  # '' when empty


@dataclass(frozen=True, slots=True)
class LegacySession:
    session_id: str
    user_id: str
    status: str
    title: str | None
    client_id: str | None
    session_type: str
    created_ms: int
    updated_ms: int
    last_activity_ms: int
    timeout_ms: int
    metadata: dict[str, Any]
    context: dict[str, Any]
    messages: list[LegacyMessage]


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    reason: str


class _Bad(Exception):
    """The record cannot be read as the original's format."""


class _Skip(Exception):
    """The record is readable but must not be imported."""


def _ms(value: Any, what: str) -> int:
    if not isinstance(value, str):
        raise _Bad(f"{what} is not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Bad(f"{what} is not an ISO 8601 date-time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise _Bad(f"{what} has no UTC offset: {value[:40]!r}")
    return int(parsed.timestamp() * 1000)


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _Bad(f"{name} is not a string")
    return value


def _object(data: dict[str, Any], name: str, what: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(f"{what} is not a JSON object")
    return value


def _user_id(value: Any) -> str:
    if not isinstance(value, str) or value == "":
        raise _Bad("user_id is missing or not a string")
    if len(value) > MAX_USER_ID or any(unicodedata.category(ch) == "Cc" for ch in value):
        raise _Bad("user_id is not a valid X-User-ID (1-256 characters, no control characters)")
    return value


def _messages(raw: Any, bounds: Bounds) -> list[LegacyMessage]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Bad("messages is not a list")
    out: list[LegacyMessage] = []
    last = 0
    for index, item in enumerate(raw, start=1):
        where = f"message {index}"
        if not isinstance(item, dict):
            raise _Bad(f"{where} is not a JSON object")
        role, content = item.get("role"), item.get("content")
        if not isinstance(role, str) or role not in _ROLES:
            raise _Bad(f"{where} has role {str(role)[:20]!r}, not one of {sorted(_ROLES)}")
        if not isinstance(content, str):
            raise _Bad(f"{where} has no string content")
        if len(content.encode("utf-8", "surrogatepass")) > bounds.max_message_bytes:
            raise _Skip(f"{where} is larger than MAX_MESSAGE_BYTES ({bounds.max_message_bytes})")
        stamp = max(_ms(item.get("timestamp"), f"{where} timestamp"), last)
        last = stamp
        metadata = _object(item, "metadata", f"{where} metadata")
        _bounded(metadata, f"{where} metadata")
        out.append(LegacyMessage(role, content, stamp, _dump(metadata) if metadata else ""))
    if len(out) > bounds.max_messages:
        raise _Skip(f"{len(out)} messages, more than MAX_MESSAGES_PER_SESSION")
    return out


def _bounded(value: dict[str, Any], what: str) -> None:
    try:
        check_json_object(value)
    except ValueError as exc:
        raise _Skip(f"{what} exceeds this service's bounds: {exc}") from None


def _dump(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _timeout_ms(metadata: dict[str, Any], bounds: Bounds) -> int:
    """The original kept the create's `timeout_minutes` in the metadata."""
    minutes = metadata.get("timeout_minutes")
    if minutes is None:
        return bounds.default_timeout_ms
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise _Bad("metadata.timeout_minutes is not an integer")
    if not bounds.min_timeout_minutes <= minutes <= bounds.max_timeout_minutes:
        raise _Skip(
            f"metadata.timeout_minutes {minutes} is outside SESSION_MIN/MAX_TIMEOUT_MINUTES"
        )
    return minutes * 60_000


def _session_type(metadata: dict[str, Any]) -> str:
    value = metadata.get("session_type", DEFAULT_SESSION_TYPE)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise _Bad("metadata.session_type is not a session type")
    if not all(ch.isascii() and (ch.isalnum() or ch in "_.:-") for ch in value):
        raise _Bad(f"metadata.session_type {value[:40]!r} is not a session type")
    return value


def _client_id(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 128 or not all("\x21" <= ch <= "\x7e" for ch in value):
        raise _Bad("client_id is not printable ASCII of 1-128 characters")
    return value


def read_record(key: str, raw: bytes, bounds: Bounds) -> LegacySession | Skip | Unreadable:
    """One ``session:{id}`` value of the original, as this service would store it."""
    try:
        return _read(key, raw, bounds)
    except _Bad as exc:
        return Unreadable(str(exc))
    except _Skip as exc:
        return Skip(str(exc))


def _read(key: str, raw: bytes, bounds: Bounds) -> LegacySession:
    session_id = key[len(KEY_PREFIX) :]
    if not key.startswith(KEY_PREFIX) or SESSION_ID_RE.fullmatch(session_id) is None:
        raise _Bad("the key does not name a session id of the original's form (a UUID)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Bad(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Bad("not a JSON object")
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        raise _Bad(f"missing {', '.join(missing)}")
    if data["session_id"] != session_id:
        raise _Bad("its session_id differs from its key")
    status = data.get("status", "active")
    if status == "deleted":
        raise _Skip("status deleted in the original (a delete is final)")
    if status not in ALL_STATUSES:
        raise _Bad(f"status {str(status)[:40]!r} is not one this service knows")
    title = _text(data, "title")
    if title is not None and len(title) > MAX_TITLE:
        raise _Skip(f"title longer than {MAX_TITLE} characters")
    metadata = _object(data, "metadata", "metadata")
    context = _object(data, "context", "context")
    _bounded(metadata, "metadata")
    _bounded(context, "context")
    return LegacySession(
        session_id=session_id,
        user_id=_user_id(data["user_id"]),
        status=status,
        title=title or None,
        client_id=_client_id(_text(data, "client_id")),
        session_type=_session_type(metadata),
        created_ms=_ms(data["created_at"], "created_at"),
        updated_ms=_ms(data["updated_at"], "updated_at"),
        last_activity_ms=_ms(data["last_activity_at"], "last_activity_at"),
        timeout_ms=_timeout_ms(metadata, bounds),
        metadata=metadata,
        context=context,
        messages=_messages(data.get("messages"), bounds),
    )
