"""Mapping Redis failures and script answers onto the service's error tree."""

from __future__ import annotations

import logging

from redis import exceptions as rx

from session_service import errors
from session_service.domain.status import transition_detail

logger = logging.getLogger("session_service.store")

_SCRIPT_ERRORS: dict[str, type[errors.ServiceError]] = {
    "session_not_found": errors.SessionNotFound,
    "session_archived": errors.SessionArchived,
    "session_full": errors.SessionFull,
    "session_limit_reached": errors.SessionLimitReached,
    "too_many_cases": errors.TooManyCases,
    "idempotency_key_reused": errors.IdempotencyKeyReused,
    "not_archived": errors.NotArchived,
    "validation_error": errors.InvalidRequest,
    "unknown_tool_call": errors.UnknownToolCall,
    "tool_call_already_answered": errors.ToolCallAlreadyAnswered,
    "duplicate_tool_call": errors.DuplicateToolCall,
    "summary_out_of_order": errors.SummaryOutOfOrder,
    "unknown_message": errors.UnknownMessage,
    "message_not_found": errors.MessageNotFound,
    "too_many_watchers": errors.TooManyWatchers,
}


def script_error(
    code: str, extra: str | None = None, target_status: str | None = None
) -> errors.ServiceError:
    """The error a script refused with, `{'err', code, extra?}` (decoded by reply_decoding.py).

    `target_status` completes an invalid transition's detail: update.lua names only the
    session's current status, the caller knows the one it asked for."""
    if code == "precondition_failed":
        return errors.PreconditionFailed(extra or '""')
    if code == "invalid_status_transition":
        current = extra or "unknown"
        return errors.InvalidStatusTransition(
            transition_detail(current, target_status or "?"), current_status=current
        )
    if code == "duplicate_tool_call":
        return errors.DuplicateToolCall(f"Tool call id {extra!r} is already used in this session")
    return _SCRIPT_ERRORS[code](extra)


def translate(exc: rx.RedisError) -> errors.ServiceError:
    """A Redis failure as the error the client sees: full or unavailable, never 500."""
    message = str(exc)
    # redis-py strips the "OOM " prefix into OutOfMemoryError; older versions keep it.
    if isinstance(exc, rx.OutOfMemoryError) or (
        isinstance(exc, rx.ResponseError) and message.startswith("OOM")
    ):
        return errors.StorageFull()
    if not isinstance(
        exc,
        rx.ConnectionError
        | rx.TimeoutError
        | rx.ReadOnlyError
        | rx.ClusterError
        | rx.AskError  # and MovedError: a slot moved more often than the client followed
        | rx.TryAgainError
        | rx.BusyLoadingError,
    ):
        logger.error("unexpected storage error: %s: %s", type(exc).__name__, message)
    return errors.StorageUnavailable()
