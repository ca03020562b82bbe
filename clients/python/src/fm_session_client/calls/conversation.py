"""The calls of a conversation: messages, the prompt window, summaries, fork and rewind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from fm_session_client import models
from fm_session_client.calls.core import (
    Call,
    MessageInput,
    conditional,
    keyed,
    message_body,
    model_of,
    model_or_none,
    session_path,
    text_of,
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
    if_none_match: str | None = None,
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
        f"{session_path(session_id)}/messages",
        model_of(models.AppendedMessage),
        json=message.to_json(),
        has_body=True,
        headers=keyed(idempotency_key, if_match, if_none_match),
        repeatable=True,
    )


def append_batch(
    session_id: str,
    messages: Iterable[MessageInput],
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
    idempotency_key: str | None = None,
) -> Call[models.AppendedBatch]:
    return Call(
        "POST",
        f"{session_path(session_id)}/messages/batch",
        model_of(models.AppendedBatch),
        json={"messages": [message_body(message) for message in messages]},
        has_body=True,
        headers=keyed(idempotency_key, if_match, if_none_match),
        repeatable=True,
    )


def list_messages(
    session_id: str,
    *,
    limit: int = 100,
    order: Literal["asc", "desc"] | None = None,
    after: str | None = None,
    before: str | None = None,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> Call[models.MessagePage | None]:
    params = [("limit", str(limit))]
    for name, value in (("order", order), ("after", after), ("before", before)):
        if value is not None:
            params.append((name, value))
    return Call(
        "GET",
        f"{session_path(session_id)}/messages",
        model_or_none(models.MessagePage),
        params=params,
        headers=conditional(if_match, if_none_match),
        repeatable=True,
        ok=frozenset({200, 304}),
    )


def get_message(session_id: str, message_id: str) -> Call[models.Message]:
    return Call(
        "GET",
        f"{session_path(session_id)}/messages/{quote(message_id, safe='')}",
        model_of(models.Message),
        repeatable=True,
    )


def stats(session_id: str) -> Call[models.SessionStats]:
    return Call(
        "GET", f"{session_path(session_id)}/stats", model_of(models.SessionStats), repeatable=True
    )


def export(session_id: str) -> Call[models.SessionWithMessages]:
    return Call(
        "GET",
        f"{session_path(session_id)}/export",
        model_of(models.SessionWithMessages),
        params=[("format", "json")],
        repeatable=True,
    )


def export_markdown(session_id: str) -> Call[str]:
    return Call(
        "GET",
        f"{session_path(session_id)}/export",
        text_of,
        params=[("format", "markdown")],
        repeatable=True,
    )


# ---- prompt window, summaries, branches ----


def window(session_id: str, max_tokens: int) -> Call[models.Window]:
    return Call(
        "GET",
        f"{session_path(session_id)}/window",
        model_of(models.Window),
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
    if_none_match: str | None = None,
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
        f"{session_path(session_id)}/summaries",
        model_of(models.Summary),
        json=body,
        has_body=True,
        headers=keyed(idempotency_key, if_match, if_none_match),
        repeatable=True,
    )


def list_summaries(
    session_id: str, *, limit: int = 20, before: str | None = None
) -> Call[models.SummaryList]:
    params = [("limit", str(limit))] + ([("before", before)] if before is not None else [])
    return Call(
        "GET",
        f"{session_path(session_id)}/summaries",
        model_of(models.SummaryList),
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
        f"{session_path(session_id)}/fork",
        model_of(models.Session),
        json=body,
        has_body=True,
        headers=keyed(idempotency_key),
        repeatable=True,
    )


def rewind(
    session_id: str,
    to_message_id: str,
    *,
    if_match: str | None = None,
    if_none_match: str | None = None,
) -> Call[models.Rewound]:
    # Not repeated after an ambiguous failure: a message appended in between would go too.
    return Call(
        "POST",
        f"{session_path(session_id)}/rewind",
        model_of(models.Rewound),
        json={"to_message_id": to_message_id},
        has_body=True,
        headers=conditional(if_match, if_none_match),
    )
