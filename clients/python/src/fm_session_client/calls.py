"""Every endpoint as a `Call`: the request to send and how to read its answer.

Both clients run the same calls (one blocking, one awaiting), so their surfaces cannot
drift apart, and this module is the one place that knows paths, headers and bodies.
`OPERATIONS` names the client method for each operation of the service's OpenAPI
document; a test checks that it covers the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from fm_session_client import models

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1/sessions"


class _Unset:
    """A field not given (as opposed to `None`, which the service reads as "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

MessageInput = models.MessageCreate | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    has_body: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    #: A repeat cannot act twice (a read, an idempotent write, or a write with a key).
    repeatable: bool = False
    #: Answers that are not errors.
    ok: frozenset[int] = frozenset({200, 201, 204})


def new_idempotency_key() -> str:
    return f"fmc-{uuid.uuid4().hex}"


def _sid(session_id: str) -> str:
    return f"{API}/{quote(session_id, safe='')}"


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        value = cls.model_validate(response.json())
        if "etag" in cls.model_fields and "etag" in response.headers:
            value = value.model_copy(update={"etag": response.headers["etag"]})
        return value

    return parse


def _model_or_none(cls: type[M]) -> Callable[[httpx.Response], M | None]:
    """None for a 304 Not Modified (the `if_none_match` ETag still holds)."""
    parse = _model(cls)

    def parse_or_none(response: httpx.Response) -> M | None:
        return None if response.status_code == 304 else parse(response)

    return parse_or_none


def _nothing(response: httpx.Response) -> None:
    return None


def _etag(response: httpx.Response) -> str | None:
    """The ETag of a HEAD; None for a 304."""
    return None if response.status_code == 304 else response.headers.get("etag")


def _text(response: httpx.Response) -> str:
    return response.text


def _conditional(if_match: str | None = None, if_none_match: str | None = None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if if_match is not None:
        headers["If-Match"] = if_match
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return headers


def _keyed(key: str | None, if_match: str | None = None) -> dict[str, str]:
    """An Idempotency-Key on every write that takes one: the caller's, or a fresh one."""
    return {"Idempotency-Key": key or new_idempotency_key(), **_conditional(if_match)}


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not UNSET}


def _message(value: MessageInput) -> dict[str, Any]:
    message = value if isinstance(value, models.MessageCreate) else models.MessageCreate(**value)
    return message.to_json()


# ---- service ----


def service_info() -> Call[models.ServiceInfo]:
    return Call("GET", "/", _model(models.ServiceInfo), repeatable=True)


def health() -> Call[models.Health]:
    return Call("GET", "/health", _model(models.Health), repeatable=True)


def ready() -> Call[models.Readiness]:
    """200 or 503 are both answers here: not ready is what the caller asked about."""
    return Call(
        "GET", "/ready", _model(models.Readiness), repeatable=True, ok=frozenset({200, 503})
    )


def metrics() -> Call[str]:
    return Call("GET", "/metrics", _text, repeatable=True)


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
        _model(models.CreatedSession),
        json=body,
        has_body=True,
        headers=_keyed(idempotency_key),
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
    return Call("GET", API, _model(models.SessionList), params=params, repeatable=True)


def delete_all_sessions() -> Call[models.DeletedSessions]:
    # Deleting everything twice deletes the same thing: safe to repeat.
    return Call("DELETE", API, _model(models.DeletedSessions), repeatable=True)


def search(request: models.SearchRequest) -> Call[models.SearchResult]:
    return Call(
        "POST",
        f"{API}/search",
        _model(models.SearchResult),
        json=request.model_dump(mode="json", exclude_none=True),
        has_body=True,
        repeatable=True,  # a read, sent as POST for its body
    )


def statistics() -> Call[models.UserStatistics]:
    return Call("GET", f"{API}/statistics", _model(models.UserStatistics), repeatable=True)


def head_session(session_id: str, *, if_none_match: str | None = None) -> Call[str | None]:
    return Call(
        "HEAD",
        _sid(session_id),
        _etag,
        headers=_conditional(if_none_match=if_none_match),
        repeatable=True,
        ok=frozenset({200, 304}),
    )


def get_session(
    session_id: str,
    *,
    include_messages: bool = False,
    limit: int = 100,
    if_none_match: str | None = None,
) -> Call[models.SessionWithMessages | None]:
    params = [("include_messages", "true" if include_messages else "false"), ("limit", str(limit))]
    return Call(
        "GET",
        _sid(session_id),
        _model_or_none(models.SessionWithMessages),
        params=params,
        headers=_conditional(if_none_match=if_none_match),
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
) -> Call[models.Session]:
    body = _given(title=title, description=description)
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
        _sid(session_id),
        _model(models.Session),
        json=body,
        has_body=True,
        headers=_conditional(if_match),
    )


def delete_session(session_id: str, *, if_match: str | None = None) -> Call[None]:
    return Call("DELETE", _sid(session_id), _nothing, headers=_conditional(if_match))


def heartbeat(session_id: str) -> Call[models.Heartbeat]:
    return Call("POST", f"{_sid(session_id)}/heartbeat", _model(models.Heartbeat), repeatable=True)


def archive(session_id: str, *, if_match: str | None = None) -> Call[models.Session]:
    # Documented idempotent: archiving an archived session answers it unchanged.
    return Call(
        "POST",
        f"{_sid(session_id)}/archive",
        _model(models.Session),
        headers=_conditional(if_match),
        repeatable=if_match is None,
    )


def restore(session_id: str, *, if_match: str | None = None) -> Call[models.Session]:
    return Call(
        "POST",
        f"{_sid(session_id)}/restore",
        _model(models.Session),
        headers=_conditional(if_match),
    )


def clear_context(session_id: str, *, if_match: str | None = None) -> Call[models.ContextCleanup]:
    return Call(
        "POST",
        f"{_sid(session_id)}/cleanup",
        _model(models.ContextCleanup),
        headers=_conditional(if_match),
    )


def recovery_info(session_id: str) -> Call[models.RecoveryInfo]:
    return Call(
        "GET", f"{_sid(session_id)}/recovery-info", _model(models.RecoveryInfo), repeatable=True
    )


# ---- messages ----


def append(
    session_id: str,
    role: models.Role,
    content: str = "",
    *,
    metadata: Mapping[str, Any] | None = None,
    tool_calls: Sequence[models.ToolCall | Mapping[str, Any]] | None = None,
    tool_call_id: str | None = None,
    token_count: int | None = None,
    if_match: str | None = None,
    idempotency_key: str | None = None,
) -> Call[models.AppendedMessage]:
    message = models.MessageCreate(
        role=role,
        content=content,
        metadata=dict(metadata) if metadata is not None else None,
        tool_calls=[
            call if isinstance(call, models.ToolCall) else models.ToolCall(**call)
            for call in tool_calls
        ]
        if tool_calls is not None
        else None,
        tool_call_id=tool_call_id,
        token_count=token_count,
    )
    return Call(
        "POST",
        f"{_sid(session_id)}/messages",
        _model(models.AppendedMessage),
        json=message.to_json(),
        has_body=True,
        headers=_keyed(idempotency_key, if_match),
        repeatable=True,
    )


def append_batch(
    session_id: str,
    messages: Iterable[MessageInput],
    *,
    if_match: str | None = None,
    idempotency_key: str | None = None,
) -> Call[models.AppendedBatch]:
    return Call(
        "POST",
        f"{_sid(session_id)}/messages/batch",
        _model(models.AppendedBatch),
        json={"messages": [_message(message) for message in messages]},
        has_body=True,
        headers=_keyed(idempotency_key, if_match),
        repeatable=True,
    )


def list_messages(
    session_id: str,
    *,
    limit: int = 100,
    order: Literal["asc", "desc"] | None = None,
    after: str | None = None,
    before: str | None = None,
    if_none_match: str | None = None,
) -> Call[models.MessagePage | None]:
    params = [("limit", str(limit))]
    for name, value in (("order", order), ("after", after), ("before", before)):
        if value is not None:
            params.append((name, value))
    return Call(
        "GET",
        f"{_sid(session_id)}/messages",
        _model_or_none(models.MessagePage),
        params=params,
        headers=_conditional(if_none_match=if_none_match),
        repeatable=True,
        ok=frozenset({200, 304}),
    )


def get_message(session_id: str, message_id: str) -> Call[models.Message]:
    return Call(
        "GET",
        f"{_sid(session_id)}/messages/{quote(message_id, safe='')}",
        _model(models.Message),
        repeatable=True,
    )


def stats(session_id: str) -> Call[models.SessionStats]:
    return Call("GET", f"{_sid(session_id)}/stats", _model(models.SessionStats), repeatable=True)


def export(session_id: str) -> Call[models.SessionWithMessages]:
    return Call(
        "GET",
        f"{_sid(session_id)}/export",
        _model(models.SessionWithMessages),
        params=[("format", "json")],
        repeatable=True,
    )


def export_markdown(session_id: str) -> Call[str]:
    return Call(
        "GET", f"{_sid(session_id)}/export", _text, params=[("format", "markdown")], repeatable=True
    )


# ---- prompt window, summaries, branches ----


def window(session_id: str, max_tokens: int) -> Call[models.Window]:
    return Call(
        "GET",
        f"{_sid(session_id)}/window",
        _model(models.Window),
        params=[("max_tokens", str(max_tokens))],
        repeatable=True,
    )


def create_summary(
    session_id: str,
    content: str,
    covers_through: str,
    *,
    token_count: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    if_match: str | None = None,
    idempotency_key: str | None = None,
) -> Call[models.Summary]:
    body = models.SummaryCreate(
        content=content,
        covers_through=covers_through,
        token_count=token_count,
        metadata=dict(metadata) if metadata is not None else None,
    ).model_dump(mode="json", exclude_none=True)
    return Call(
        "POST",
        f"{_sid(session_id)}/summaries",
        _model(models.Summary),
        json=body,
        has_body=True,
        headers=_keyed(idempotency_key, if_match),
        repeatable=True,
    )


def list_summaries(
    session_id: str, *, limit: int = 20, before: str | None = None
) -> Call[models.SummaryList]:
    params = [("limit", str(limit))] + ([("before", before)] if before is not None else [])
    return Call(
        "GET",
        f"{_sid(session_id)}/summaries",
        _model(models.SummaryList),
        params=params,
        repeatable=True,
    )


def fork(
    session_id: str,
    *,
    through_message_id: str | None = None,
    title: str | None = None,
    idempotency_key: str | None = None,
) -> Call[models.Session]:
    body = models.ForkRequest(through_message_id=through_message_id, title=title).model_dump(
        mode="json", exclude_none=True
    )
    return Call(
        "POST",
        f"{_sid(session_id)}/fork",
        _model(models.Session),
        json=body,
        has_body=True,
        headers=_keyed(idempotency_key),
        repeatable=True,
    )


def rewind(
    session_id: str, to_message_id: str, *, if_match: str | None = None
) -> Call[models.Rewound]:
    # Not repeated after an ambiguous failure: a message appended in between would go too.
    return Call(
        "POST",
        f"{_sid(session_id)}/rewind",
        _model(models.Rewound),
        json={"to_message_id": to_message_id},
        has_body=True,
        headers=_conditional(if_match),
    )


# ---- cases ----


def link_case(session_id: str, case_id: str) -> Call[models.CaseLinkResult]:
    return Call(
        "POST",
        f"{_sid(session_id)}/cases",
        _model(models.CaseLinkResult),
        json={"case_id": case_id},
        has_body=True,
    )


def list_cases(session_id: str) -> Call[models.CaseList]:
    return Call("GET", f"{_sid(session_id)}/cases", _model(models.CaseList), repeatable=True)


def unlink_case(session_id: str, case_id: str) -> Call[None]:
    return Call("DELETE", f"{_sid(session_id)}/cases/{quote(case_id, safe='')}", _nothing)


# ---- administration ----


def cleanup() -> Call[models.CleanupReport]:
    return Call("POST", f"{API}/cleanup", _model(models.CleanupReport), repeatable=True)


def erase_user(user_id: str) -> Call[models.ErasureReport]:
    return Call(
        "DELETE",
        f"/api/v1/users/{quote(user_id, safe='')}/sessions",
        _model(models.ErasureReport),
        repeatable=True,  # erasing twice erases the same user
    )


#: The service's operationId -> the client method that calls it.
OPERATIONS: dict[str, str] = {
    "root__get": "service_info",
    "health_health_get": "health",
    "ready_ready_get": "ready",
    "metrics_endpoint_metrics_get": "metrics",
    "cleanup_api_v1_sessions_cleanup_post": "cleanup",
    "erase_user_api_v1_users__user_id__sessions_delete": "erase_user",
    "create_session_api_v1_sessions_post": "create_session",
    "list_sessions_api_v1_sessions_get": "list_sessions",
    "delete_all_sessions_api_v1_sessions_delete": "delete_all_sessions",
    "search_sessions_api_v1_sessions_search_post": "search",
    "user_statistics_api_v1_sessions_statistics_get": "statistics",
    "head_session_api_v1_sessions__session_id__head": "head_session",
    "get_session_api_v1_sessions__session_id__get": "get_session",
    "patch_session_api_v1_sessions__session_id__patch": "update",
    "put_session_api_v1_sessions__session_id__put": "update",
    "delete_session_api_v1_sessions__session_id__delete": "delete_session",
    "heartbeat_api_v1_sessions__session_id__heartbeat_post": "heartbeat",
    "archive_api_v1_sessions__session_id__archive_post": "archive",
    "restore_api_v1_sessions__session_id__restore_post": "restore",
    "clear_context_api_v1_sessions__session_id__cleanup_post": "clear_context",
    "recovery_info_api_v1_sessions__session_id__recovery_info_get": "recovery_info",
    "append_message_api_v1_sessions__session_id__messages_post": "append",
    "list_messages_api_v1_sessions__session_id__messages_get": "list_messages",
    "get_message_api_v1_sessions__session_id__messages__message_id__get": "get_message",
    "stats_api_v1_sessions__session_id__stats_get": "stats",
    "export_api_v1_sessions__session_id__export_get": "export",
    "window_api_v1_sessions__session_id__window_get": "window",
    "create_summary_api_v1_sessions__session_id__summaries_post": "create_summary",
    "list_summaries_api_v1_sessions__session_id__summaries_get": "list_summaries",
    "fork_api_v1_sessions__session_id__fork_post": "fork",
    "rewind_api_v1_sessions__session_id__rewind_post": "rewind",
    "link_case_api_v1_sessions__session_id__cases_post": "link_case",
    "list_cases_api_v1_sessions__session_id__cases_get": "list_cases",
    "unlink_case_api_v1_sessions__session_id__cases__case_id__delete": "unlink_case",
}
