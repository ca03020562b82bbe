"""Maintenance: expired-entry cleanup and per-user erasure."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from session_service import errors
from session_service.api.deps import StoreDep, UserDep
from session_service.api.responses import error_responses, json_response
from session_service.domain import models
from session_service.domain.timestamps import iso
from session_service.observability import metrics

router = APIRouter(prefix="/api/v1", tags=["maintenance"])


@router.post(
    "/sessions/cleanup",
    summary="Remove expired sessions' index entries now",
    description=(
        "Runs the background cleanup now: for the caller, or for every user when `X-User-Roles` "
        "contains `admin` (a JSON array or a comma-separated list). Reads never count expired "
        "sessions either way; this reclaims their index memory."
    ),
    response_model=models.CleanupReport,
    responses=error_responses(body=True),
)
async def cleanup(user: UserDep, store: StoreDep) -> Response:
    if user.is_admin:
        cleaned, scanned = await store.cleanup_all()
    else:
        cleaned, scanned = await store.cleanup_user(user.user_id)
    return json_response(
        {
            "cleaned_sessions": cleaned,
            "scanned": scanned,
            "timestamp": iso(int(time.time() * 1000)),
        }
    )


# `path`: any user id, "/" included. It stops at a newline, which no user id holds
# (identity headers refuse control characters): such a path is documented as 404.
_NO_SUCH_USER_PATH: dict[int | str, dict[str, Any]] = {
    404: {
        "model": models.ErrorBody,
        "description": "`not_found`: a user id never holds a line break, so a path with one "
        "matches no endpoint",
    }
}


@router.delete(
    "/users/{user_id:path}/sessions",
    summary="Erase every session of a user (admin)",
    description=(
        "Deletes every session, message, case link, idempotency record and index entry of the "
        "user. Requires the `admin` role. Redis AOF files keep deleted data until the next "
        "rewrite (see docs/security.md)."
    ),
    response_model=models.ErasureReport,
    responses={**error_responses(errors.Forbidden, body=True), **_NO_SUCH_USER_PATH},
)
async def erase_user(
    user_id: Annotated[str, Path(min_length=1, max_length=256)], user: UserDep, store: StoreDep
) -> Response:
    if not user.is_admin:
        raise errors.Forbidden()
    sessions, keys = await store.erase_user(user_id)
    metrics.SESSIONS.labels("deleted").inc(sessions)
    return json_response({"user_id": user_id, "deleted_sessions": sessions, "deleted_keys": keys})
