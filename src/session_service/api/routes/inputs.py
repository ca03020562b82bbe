"""What a request means to the store: status filters, timeouts, update changes, messages.

The routers stay thin: they validate with the models, these turn the result into
the domain values the store takes (UNSET for a field the caller did not send).
"""

from __future__ import annotations

from typing import Any

from session_service import errors
from session_service.config import Settings
from session_service.domain import models
from session_service.domain.status import UNARCHIVED, SessionStatus
from session_service.store import UNSET, NewMessage


def statuses(status: list[SessionStatus] | None, include_archived: bool) -> list[str]:
    if status:
        return sorted({s.value for s in status})
    return [*UNARCHIVED, SessionStatus.ARCHIVED.value] if include_archived else list(UNARCHIVED)


def timeout_ms(settings: Settings, minutes: int | None) -> int | None:
    """`timeout_minutes` within the configured bounds, in ms; None when not given."""
    if minutes is None:
        return None
    low, high = settings.session_min_timeout_minutes, settings.session_max_timeout_minutes
    if not low <= minutes <= high:
        raise errors.InvalidRequest(
            f"timeout_minutes: must be between {low} and {high}", field="timeout_minutes"
        )
    return minutes * 60_000


def changes(body: models.SessionUpdate, settings: Settings) -> dict[str, Any]:
    """The update as the store takes it: a title or description not sent is UNSET."""
    given = body.model_fields_set
    return {
        "title": body.title if "title" in given else UNSET,
        "description": body.description if "description" in given else UNSET,
        "status": body.status.value if body.status else None,
        "metadata": body.metadata,
        "context": body.context,
        "timeout_ms": timeout_ms(settings, body.timeout_minutes),
    }


def new_message(body: models.MessageCreate, settings: Settings) -> NewMessage:
    """The message to append; 413 when its content is over MAX_MESSAGE_BYTES."""
    if len(body.content.encode("utf-8")) > settings.max_message_bytes:
        raise errors.MessageTooLarge(
            f"Message content exceeds {settings.max_message_bytes} bytes (MAX_MESSAGE_BYTES)"
        )
    calls = [call.model_dump() for call in body.tool_calls] if body.tool_calls else None
    return NewMessage(
        body.role, body.content, body.metadata, calls, body.tool_call_id, body.token_count
    )
