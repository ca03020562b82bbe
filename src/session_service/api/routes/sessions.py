"""Session lifecycle endpoints under /api/v1/sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from starlette.responses import Response

from session_service import errors
from session_service.api.conditional import (
    check_read,
    not_modified,
    not_modified_response,
    tagged,
)
from session_service.api.deps import (
    IdempotencyKeyDep,
    IfNoneMatchDep,
    ReadIfMatchDep,
    SessionIdDep,
    SessionIfMatchDep,
    SettingsDep,
    StoreDep,
    UserDep,
)
from session_service.api.responses import error_responses, json_response, tagged_responses
from session_service.api.routes import inputs
from session_service.domain import models
from session_service.domain.ids import new_session_id
from session_service.domain.status import ALL_STATUSES, RESUMABLE, SessionStatus
from session_service.observability import metrics
from session_service.store import NewSession, SearchFilters

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])

NOT_FOUND = errors.SessionNotFound
PRECONDITION = errors.PreconditionFailed


@router.post(
    "",
    summary="Create a session (or resume one by client_id)",
    description=(
        "Creates a session for the caller. With a `client_id` for which the caller has a live "
        "session (active or in_progress, not expired), that session is resumed instead: 200 "
        "with `session_resumed: true` and its life extended. Concurrent creates with one "
        "`client_id` yield one session. Safe to retry with `Idempotency-Key`."
    ),
    status_code=201,
    response_model=models.CreatedSession,
    responses={
        **tagged_responses(201, description="Created"),
        **tagged_responses(
            200, model=models.CreatedSession, description="Resumed an existing session"
        ),
        **error_responses(errors.SessionLimitReached, errors.IdempotencyKeyReused, body=True),
    },
)
async def create_session(
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    idem: IdempotencyKeyDep,
    body: Annotated[models.SessionCreate | None, Body()] = None,
) -> Response:
    body = body or models.SessionCreate()  # every field is optional, so is the body
    timeout_ms = inputs.timeout_ms(settings, body.timeout_minutes)
    new = NewSession.build(
        new_session_id(),
        settings.default_session_ttl * 1000 if timeout_ms is None else timeout_ms,
        title=body.title,
        description=body.description,
        session_type=body.session_type or models.DEFAULT_SESSION_TYPE,
        metadata=body.metadata,
        client_id=body.client_id,
    )
    result = await store.create(user.user_id, new, idem)
    metrics.SESSIONS.labels("resumed" if result.resumed else "created").inc()
    session = result.session
    session["session_resumed"] = result.resumed
    return json_response(session, 200 if result.resumed else 201, tagged(session.etag))


@router.get(
    "",
    summary="List the caller's sessions",
    description=(
        "Most recent activity first, in a stable order. Archived sessions are left out unless "
        "`status=archived` or `include_archived=true`. `total` counts live sessions exactly."
    ),
    response_model=models.SessionList,
    responses=error_responses(),
)
async def list_sessions(
    user: UserDep,
    store: StoreDep,
    status: Annotated[list[SessionStatus] | None, Query(max_length=5)] = None,
    include_archived: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
) -> Response:
    total, sessions = await store.list_sessions(
        user.user_id, inputs.statuses(status, include_archived), offset, limit
    )
    return json_response({"sessions": sessions, "total": total, "limit": limit, "offset": offset})


@router.post(
    "/search",
    summary="Search the caller's sessions",
    description=(
        "Filters combine (AND): status, case-insensitive `query` on title or description, exact "
        "metadata values, session_type and created/updated ranges. Most recent activity first; "
        "`next_cursor` continues the walk over the matches as they were when it started, so a "
        "session that lives through the walk appears exactly once and no id repeats; `total` "
        "counts those matches. Archived sessions only when `status` names them or "
        "`include_archived` is true. A user keeps 4 walks, each 10 minutes after its last "
        "page: a cursor whose walk is gone is 409 `search_expired` (start again from the "
        "first page)."
    ),
    response_model=models.SearchResult,
    responses=error_responses(errors.SearchExpired, body=True),
)
async def search_sessions(body: models.SearchRequest, user: UserDep, store: StoreDep) -> Response:
    status = (
        body.status if isinstance(body.status, list) else ([body.status] if body.status else None)
    )
    filters = SearchFilters(
        statuses=inputs.statuses(status, body.include_archived),
        query=body.query or "",
        session_type=body.session_type or "",
        created_after=body.created_after,
        created_before=body.created_before,
        updated_after=body.updated_after,
        updated_before=body.updated_before,
        metadata=body.metadata,
    )
    total, sessions, cursor = await store.search(user.user_id, filters, body.limit, body.cursor)
    return json_response(
        {"sessions": sessions, "total": total, "limit": body.limit, "next_cursor": cursor}
    )


@router.delete(
    "",
    summary="Delete all of the caller's sessions",
    description=(
        "Deletes every session of the caller, archived included, with everything they own, "
        "and answers how many were deleted. Runs in bounded slices, so Redis is never "
        "blocked; every session that existed when it was sent is deleted, sessions created "
        "while it runs may survive. Safe to repeat."
    ),
    response_model=models.DeletedSessions,
    responses=error_responses(body=True),
)
async def delete_all_sessions(user: UserDep, store: StoreDep) -> Response:
    deleted = await store.delete_all(user.user_id)
    metrics.SESSIONS.labels("deleted").inc(deleted)
    return json_response({"deleted": deleted})


# Declared before /{session_id}, which would otherwise take "statistics" as an id.
@router.get(
    "/statistics",
    summary="The caller's session statistics",
    description=(
        "Live sessions by status, total messages, and the least and most recent "
        "`last_activity_at`, read from counters and indexes (not a scan)."
    ),
    response_model=models.UserStatistics,
    responses=error_responses(),
)
async def user_statistics(user: UserDep, store: StoreDep) -> Response:
    return json_response({"user_id": user.user_id, **await store.statistics(user.user_id)})


@router.head(
    "/{session_id}",
    summary="Check that a session is live",
    description=(
        "200 with no body while the caller's session exists (archived ones included, as for "
        "GET), 404 otherwise. One small read; it does not count as activity. Carries the "
        "same `ETag` as GET; with `If-None-Match` an unchanged session is a 304."
    ),
    status_code=200,
    response_class=Response,
    responses={
        **tagged_responses(description="The session is live", not_modified=True),
        **error_responses(NOT_FOUND, errors.PreconditionFailed, body=True),
    },
)
async def head_session(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    if_match: ReadIfMatchDep,
    if_none_match: IfNoneMatchDep = None,
) -> Response:
    etag = await store.current_etag(user.user_id, session_id, "s")
    check_read(if_match, etag)
    if not_modified(if_none_match, etag):
        return not_modified_response(etag)
    return Response(status_code=200, headers=tagged(etag))


@router.get(
    "/{session_id}",
    summary="Get a session",
    description=(
        "The session, or 404 when it does not exist, has expired or belongs to another user. "
        "With `include_messages=true`, the newest `limit` messages are embedded, oldest first. "
        "The `ETag` changes with anything the session shows (heartbeats included); with "
        "`If-None-Match` an unchanged session is a 304 with no body."
    ),
    response_model=models.SessionWithMessages,
    responses={
        **tagged_responses(not_modified=True),
        **error_responses(NOT_FOUND, errors.PreconditionFailed),
    },
)
async def get_session(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    if_match: ReadIfMatchDep,
    include_messages: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    if_none_match: IfNoneMatchDep = None,
) -> Response:
    if include_messages:
        session = await store.get_with_messages(user.user_id, session_id, limit)
    else:
        session = await store.get(user.user_id, session_id)
    check_read(if_match, session.etag)
    if not_modified(if_none_match, session.etag):
        return not_modified_response(session.etag)
    return json_response(session, headers=tagged(session.etag))


_UPDATE_DOC: dict[str, Any] = {
    "description": (
        "Updates title, description, status, metadata, context and timeout_minutes. A null "
        "title or description clears it; a null status, metadata, context or timeout_minutes "
        "changes nothing. Metadata and context are merged: a key set to null is removed. "
        "Every update counts as activity (expires_at is recomputed from now, with the new "
        "timeout when one is given). Status changes follow the transition rules; an archived "
        "session is read-only. With `If-Match`, only if the session is unchanged."
    ),
    "response_model": models.Session,
    "responses": {
        **tagged_responses(),
        **error_responses(
            NOT_FOUND,
            PRECONDITION,
            errors.InvalidStatusTransition,
            errors.SessionArchived,
            body=True,
        ),
    },
}


# One handler for both methods. The names keep each operation's OpenAPI operationId;
# decorators apply bottom-up, so PATCH is registered (and documented) first.
@router.put(
    "/{session_id}", summary="Update a session (same as PATCH)", name="put_session", **_UPDATE_DOC
)
@router.patch("/{session_id}", summary="Update a session", name="patch_session", **_UPDATE_DOC)
async def update_session(
    session_id: SessionIdDep,
    body: models.SessionUpdate,
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    if_match: SessionIfMatchDep,
) -> Response:
    session = await store.update(
        user.user_id, session_id, **inputs.changes(body, settings), if_match=if_match
    )
    return json_response(session, headers=tagged(session.etag))


@router.delete(
    "/{session_id}",
    summary="Delete a session",
    description="Deletes the session and everything it owns: messages, case links, "
    "idempotency records and index entries.",
    status_code=204,
    response_class=Response,
    responses=error_responses(NOT_FOUND, PRECONDITION, body=True),
)
async def delete_session(
    session_id: SessionIdDep, user: UserDep, store: StoreDep, if_match: SessionIfMatchDep
) -> Response:
    await store.delete(user.user_id, session_id, if_match)
    metrics.SESSIONS.labels("deleted").inc()
    return Response(status_code=204)


@router.post(
    "/{session_id}/heartbeat",
    summary="Keep a session alive",
    description="Slides the inactivity deadline. An archived session is left unchanged (200).",
    response_model=models.Heartbeat,
    responses={**tagged_responses(), **error_responses(NOT_FOUND, body=True)},
)
async def heartbeat(session_id: SessionIdDep, user: UserDep, store: StoreDep) -> Response:
    beat = await store.heartbeat(user.user_id, session_id)
    return json_response(beat, headers=tagged(beat.etag))


@router.post(
    "/{session_id}/archive",
    summary="Archive a session",
    description="Makes the session read-only and keeps it for ARCHIVED_SESSION_TTL. Idempotent.",
    response_model=models.Session,
    responses={**tagged_responses(), **error_responses(NOT_FOUND, PRECONDITION, body=True)},
)
async def archive(
    session_id: SessionIdDep, user: UserDep, store: StoreDep, if_match: SessionIfMatchDep
) -> Response:
    session = await store.archive(user.user_id, session_id, if_match)
    return json_response(session, headers=tagged(session.etag))


@router.post(
    "/{session_id}/restore",
    summary="Restore an archived session",
    description="Returns the session to the status it had before archiving, with a fresh "
    "inactivity window. Messages, metadata and timestamps are untouched.",
    response_model=models.Session,
    responses={
        **tagged_responses(),
        **error_responses(NOT_FOUND, PRECONDITION, errors.NotArchived, body=True),
    },
)
async def restore(
    session_id: SessionIdDep, user: UserDep, store: StoreDep, if_match: SessionIfMatchDep
) -> Response:
    session = await store.restore(user.user_id, session_id, if_match)
    return json_response(session, headers=tagged(session.etag))


@router.post(
    "/{session_id}/cleanup",
    summary="Clear a session's working context",
    description="Removes every key of the session's `context`; messages and metadata stay.",
    response_model=models.ContextCleanup,
    responses={
        **tagged_responses(),
        **error_responses(NOT_FOUND, PRECONDITION, errors.SessionArchived, body=True),
    },
)
async def clear_context(
    session_id: SessionIdDep, user: UserDep, store: StoreDep, if_match: SessionIfMatchDep
) -> Response:
    cleared, etag = await store.clear_context(user.user_id, session_id, if_match)
    return json_response(
        {"success": True, "session_id": session_id, "cleared_keys": cleared}, headers=tagged(etag)
    )


@router.get(
    "/{session_id}/recovery-info",
    summary="How a session can be recovered",
    description="Whether the session can be restored (archived) or resumed (active or "
    "in_progress), with a summary of its state.",
    response_model=models.RecoveryInfo,
    responses=error_responses(NOT_FOUND),
)
async def recovery_info(session_id: SessionIdDep, user: UserDep, store: StoreDep) -> Response:
    s = await store.get(user.user_id, session_id)
    archived = s["status"] == SessionStatus.ARCHIVED
    return json_response(
        {
            "session_id": session_id,
            "user_id": user.user_id,
            "status": s["status"],
            "created_at": s["created_at"],
            "last_activity_at": s["last_activity_at"],
            "expires_at": s["expires_at"],
            "message_count": s["message_count"],
            "state_summary": {
                "title": s["title"],
                "message_count": s["message_count"],
                "metadata_keys": sorted(s["metadata"]),
                "context_keys": sorted(s["context"]),
                "client_id": s["client_id"],
            },
            "recovery_info": {
                "can_restore": archived,
                "restore_endpoint": f"/api/v1/sessions/{session_id}/restore" if archived else None,
                "can_resume": s["status"] in RESUMABLE,
            },
        }
    )


__all__ = ["ALL_STATUSES", "router"]
