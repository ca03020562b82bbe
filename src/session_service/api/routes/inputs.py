"""What a request means to the store: status filters, timeouts and update changes.

The routers stay thin: they validate with the models, these turn the result into
the domain values the store takes (UNSET for a field the caller did not send).
"""

from __future__ import annotations

from typing import Any

from session_service import errors
from session_service.config import Settings
from session_service.domain import models
from session_service.domain.status import UNARCHIVED, SessionStatus
from session_service.store import UNSET


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
