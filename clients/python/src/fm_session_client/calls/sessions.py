"""The calls of the service endpoints, sessions, search, cases and administration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fm_session_client import models
from fm_session_client.calls.core import (
    API,
    UNSET,
    Call,
    conditional,
    etag_of,
    given,
    keyed,
    model_of,
    model_or_none,
    nothing,
    session_path,
    text_of,
)

# ---- service ----


def service_info() -> Call[models.ServiceInfo]:
    return Call("GET", "/", model_of(models.ServiceInfo), repeatable=True)


def health() -> Call[models.Health]:
    return Call("GET", "/health", model_of(models.Health), repeatable=True)


def ready() -> Call[models.Readiness]:
    """200 or 503 are both answers here: not ready is what the caller asked about."""
    return Call(
        "GET", "/ready", model_of(models.Readiness), repeatable=True, ok=frozenset({200, 503})
    )


def metrics() -> Call[str]:
    return Call("GET", "/metrics", text_of, repeatable=True)


# ---- sessions ----


def create_session(
    *,
    title: str | None = None,
    description: str | None = None,
    session_type: str | None = None,
    client_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    timeout_minutes: int | None = None,
    idempotency_key: str | None = None,
) -> Call[models.CreatedSession]:
    body = models.SessionCreate(
        title=title,
        description=description,
        session_type=session_type,
        client_id=client_id,
        metadata=dict(metadata) if metadata is not None else None,
        timeout_minutes=timeout_minutes,
    ).model_dump(mode="json", exclude_none=True)
    return Call(
        "POST",
        API,
        model_of(models.CreatedSession),
        json=body,
        has_body=True,
        headers=keyed(idempotency_key),
        repeatable=True,
    )


def list_sessions(
    *,
    status: Sequence[models.SessionStatus] | None = None,
    include_archived: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Call[models.SessionList]:
    params: list[tuple[str, str]] = [("status", str(value)) for value in status or ()]
    params += [
        ("include_archived", "true" if include_archived else "false"),
        ("limit", str(limit)),
        ("offset", str(offset)),
    ]
    return Call("GET", API, model_of(models.SessionList), params=params, repeatable=True)


def delete_all_sessions() -> Call[models.DeletedSessions]:
    # Deleting everything twice deletes the same thing: safe to repeat.
    return Call("DELETE", API, model_of(models.DeletedSessions), repeatable=True)


def _iso(value: str | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def search_request(
    *,
    status: models.SessionStatus | Sequence[models.SessionStatus] | None = None,
    query: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    session_type: str | None = None,
    created_after: str | datetime | None = None,
    created_before: str | datetime | None = None,
    updated_after: str | datetime | None = None,
    updated_before: str | datetime | None = None,
    include_archived: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> models.SearchRequest:
    """The body of a search: tuples and datetimes as the service reads them."""
    return models.SearchRequest(
        status=status if isinstance(status, str) or status is None else list(status),
        query=query,
        metadata=dict(metadata) if metadata is not None else None,
        session_type=session_type,
        created_after=_iso(created_after),
        created_before=_iso(created_before),
        updated_after=_iso(updated_after),
        updated_before=_iso(updated_before),
        include_archived=include_archived,
        limit=limit,
        cursor=cursor,
    )


def search(request: models.SearchRequest) -> Call[models.SearchResult]:
    return Call(
        "POST",
        f"{API}/search",
        model_of(models.SearchResult),
        json=request.model_dump(mode="json", exclude_none=True),
        has_body=True,
        repeatable=True,  # a read, sent as POST for its body
    )


def statistics() -> Call[models.UserStatistics]:
    return Call("GET", f"{API}/statistics", model_of(models.UserStatistics), repeatable=True)


def head_session(
    session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
) -> Call[str | None]:
    return Call(
        "HEAD",
        session_path(session_id),
        etag_of,
        headers=conditional(if_match, if_none_match),
        repeatable=True,
        ok=frozenset({200, 304}),
    )


def get_session(
    session_id: str,
    *,
    include_messages: bool = False,
    limit: int = 100,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> Call[models.SessionWithMessages | None]:
    params = [("include_messages", "true" if include_messages else "false"), ("limit", str(limit))]
    return Call(
        "GET",
        session_path(session_id),
        model_or_none(models.SessionWithMessages),
        params=params,
        headers=conditional(if_match, if_none_match),
        repeatable=True,
        ok=frozenset({200, 304}),
    )


def update(
    session_id: str,
    *,
    title: str | None = UNSET,
    description: str | None = UNSET,
    status: models.SessionStatus | None = None,
    metadata: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    timeout_minutes: int | None = None,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> Call[models.Session]:
    body = given(title=title, description=description)
    optional = {
        "status": status,
        "metadata": dict(metadata) if metadata is not None else None,
        "context": dict(context) if context is not None else None,
        "timeout_minutes": timeout_minutes,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    # Without If-Match a repeat could undo someone else's change made in between;
    # with it, a repeat after success fails 412 instead of acting twice.
    return Call(
        "PATCH",
        session_path(session_id),
        model_of(models.Session),
        json=body,
        has_body=True,
        headers=conditional(if_match, if_none_match),
    )


def delete_session(
    session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
) -> Call[None]:
    return Call(
        "DELETE", session_path(session_id), nothing, headers=conditional(if_match, if_none_match)
    )


def heartbeat(session_id: str) -> Call[models.Heartbeat]:
    return Call(
        "POST", f"{session_path(session_id)}/heartbeat", model_of(models.Heartbeat), repeatable=True
    )


def archive(
    session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
) -> Call[models.Session]:
    # Documented idempotent: archiving an archived session answers it unchanged.
    return Call(
        "POST",
        f"{session_path(session_id)}/archive",
        model_of(models.Session),
        headers=conditional(if_match, if_none_match),
        repeatable=if_match is None,
    )


def restore(
    session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
) -> Call[models.Session]:
    return Call(
        "POST",
        f"{session_path(session_id)}/restore",
        model_of(models.Session),
        headers=conditional(if_match, if_none_match),
    )


def clear_context(
    session_id: str, *, if_match: str | None = None, if_none_match: str | None = None
) -> Call[models.ContextCleanup]:
    return Call(
        "POST",
        f"{session_path(session_id)}/cleanup",
        model_of(models.ContextCleanup),
        headers=conditional(if_match, if_none_match),
    )


def recovery_info(session_id: str) -> Call[models.RecoveryInfo]:
    return Call(
        "GET",
        f"{session_path(session_id)}/recovery-info",
        model_of(models.RecoveryInfo),
        repeatable=True,
    )


# ---- cases ----


def link_case(session_id: str, case_id: str) -> Call[models.CaseLinkResult]:
    return Call(
        "POST",
        f"{session_path(session_id)}/cases",
        model_of(models.CaseLinkResult),
        json={"case_id": case_id},
        has_body=True,
    )


def list_cases(session_id: str) -> Call[models.CaseList]:
    return Call(
        "GET", f"{session_path(session_id)}/cases", model_of(models.CaseList), repeatable=True
    )


def unlink_case(session_id: str, case_id: str) -> Call[None]:
    return Call("DELETE", f"{session_path(session_id)}/cases/{quote(case_id, safe='')}", nothing)


# ---- administration ----


def cleanup() -> Call[models.CleanupReport]:
    return Call("POST", f"{API}/cleanup", model_of(models.CleanupReport), repeatable=True)


def erase_user(user_id: str) -> Call[models.ErasureReport]:
    return Call(
        "DELETE",
        f"/api/v1/users/{quote(user_id, safe='')}/sessions",
        model_of(models.ErasureReport),
        repeatable=True,  # erasing twice erases the same user
    )
