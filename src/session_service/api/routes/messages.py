"""The conversation: append, page, one message, stats and export."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from starlette.responses import Response, StreamingResponse

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
    MessagesIfMatchDep,
    ReadIfMatchDep,
    SessionIdDep,
    SettingsDep,
    StoreDep,
    UserDep,
)
from session_service.api.responses import error_responses, json_response, tagged_responses
from session_service.api.routes import inputs
from session_service.domain import models
from session_service.domain.ids import MESSAGE_ID_RE, message_seq
from session_service.observability import metrics
from session_service.transcript import json_transcript, markdown_transcript

router = APIRouter(prefix="/api/v1/sessions/{session_id}", tags=["messages"])
NOT_FOUND = errors.SessionNotFound
#: What an append answers, one message or a batch.
APPEND_ERRORS = (
    NOT_FOUND,
    errors.PreconditionFailed,
    errors.SessionArchived,
    errors.SessionFull,
    errors.MessageTooLarge,
    errors.IdempotencyKeyReused,
    errors.UnknownToolCall,
    errors.ToolCallAlreadyAnswered,
    errors.DuplicateToolCall,
)


@router.post(
    "/messages",
    summary="Append a message",
    description=(
        "Appends one message atomically; no concurrent append is ever lost or duplicated. "
        "Updates message_count, last_activity_at and the session's expiry; the first message "
        "moves an active session to in_progress, and the first user message titles an "
        "untitled session. Safe to retry with `Idempotency-Key` (a retry replays even when "
        "its `If-Match` no longer holds). An assistant message may "
        "carry `tool_calls` (its content may then be empty); a `tool` message answers one of "
        "them by `tool_call_id`, exactly once. Without `token_count` the count is estimated "
        "(ceil(UTF-8 bytes / 4) of the content, tool names and arguments, + 8 per tool call) "
        "and the message says `token_count_estimated: true`. The `ETag` is the messages "
        "collection's: send it as `If-Match` to append only if nobody wrote a message (or a "
        "summary, or rewound) in between; heartbeats and session updates do not count."
    ),
    status_code=201,
    response_model=models.AppendedMessage,
    responses={
        **tagged_responses(201, description="Appended"),
        **error_responses(*APPEND_ERRORS, body=True),
    },
)
async def append_message(
    session_id: SessionIdDep,
    body: models.MessageCreate,
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    # If-Match before Idempotency-Key: dependencies resolve in this order, and a stale
    # If-Match must answer 412 before a malformed key's 422 (issue 14's error order).
    if_match: MessagesIfMatchDep,
    idem: IdempotencyKeyDep,
) -> Response:
    msg = inputs.new_message(body, settings)
    result = await store.append(
        user.user_id,
        session_id,
        role=msg.role,
        content=msg.content,
        metadata=msg.metadata,
        idempotency_key=idem,
        tool_calls=msg.tool_calls,
        tool_call_id=msg.tool_call_id,
        token_count=msg.token_count,
        if_match=if_match,
    )
    if not result.replayed:
        metrics.MESSAGES.labels(body.role).inc()
    return json_response(
        {"session_id": session_id, "message": result.message, "total_messages": result.total},
        201,
        tagged(result.etag),
    )


@router.post(
    "/messages/batch",
    summary="Append a whole agent turn",
    description=(
        "Appends 1-64 messages (the assistant's tool calls and every tool result, say) in one "
        "atomic step: all of them or none. Each has the single append's body and rules, "
        "checked as if the messages before it in the batch were already stored, so a `tool` "
        "message may answer a tool call made earlier in the same batch. Every message is "
        "checked before anything is stored; on any error nothing is stored and the error "
        "names the message at fault in `index` (from 0; `detail` starts with `messages[i]:`) "
        "with the code the single append would give. A batch that does not fit in "
        "MAX_MESSAGES_PER_SESSION is 409 `session_full`. It counts as one activity and moves "
        "the messages `ETag` once; `If-Match` works as for the single append. One "
        "`Idempotency-Key` covers the whole batch: a retry answers the stored result (even "
        "when its `If-Match` no longer holds); the key is refused with another batch or with "
        "a single append. The body is bounded by MAX_REQUEST_BYTES, each content by "
        "MAX_MESSAGE_BYTES."
    ),
    status_code=201,
    response_model=models.AppendedBatch,
    responses={
        **tagged_responses(201, description="Appended, every message of the batch"),
        **error_responses(*APPEND_ERRORS, body=True),
    },
)
async def append_batch(
    session_id: SessionIdDep,
    body: models.MessageBatch,
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    if_match: MessagesIfMatchDep,  # before the key, as for the single append
    idem: IdempotencyKeyDep,
) -> Response:
    messages = []
    for index, message in enumerate(body.messages):
        try:
            messages.append(inputs.new_message(message, settings))
        except errors.MessageTooLarge as exc:
            raise exc.in_batch(index) from None
    result = await store.append_batch(user.user_id, session_id, messages, idem, if_match=if_match)
    if not result.replayed:
        for message in body.messages:
            metrics.MESSAGES.labels(message.role).inc()
    return json_response({"messages": result.messages}, 201, tagged(result.etag))


MessageCursor = Annotated[str | None, Query(max_length=14, pattern=MESSAGE_ID_RE.pattern)]


@router.get(
    "/messages",
    summary="Page through messages",
    description=(
        "Without `order`: the newest `limit` messages, oldest first. `order=asc` walks forward "
        "from the oldest (or from just after `after`); `order=desc` walks backward from the "
        "newest (or from just before `before`). `next_cursor` is the last message id of the "
        "page, to pass as `after` (asc) or `before` (desc); without `order` it is the oldest "
        "message id of the page, to pass as `before` with `order=desc`. Cursors are exclusive "
        "and a page costs the same however long the conversation is. The `ETag` is the "
        "collection's: it changes only when messages are appended, rewound or summarized, so "
        "`If-None-Match` polls cheaply (304 with no body)."
    ),
    response_model=models.MessagePage,
    responses={
        **tagged_responses(not_modified=True),
        **error_responses(NOT_FOUND, errors.PreconditionFailed),
    },
)
async def list_messages(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    if_match: ReadIfMatchDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    order: Literal["asc", "desc"] | None = None,
    after: MessageCursor = None,
    before: MessageCursor = None,
    if_none_match: IfNoneMatchDep = None,
) -> Response:
    if after and before:
        raise errors.InvalidRequest("pass either after or before, not both")
    if after:
        if order == "desc":
            raise errors.InvalidRequest("after walks forward; use it with order=asc")
        order = "asc"
    if before:
        if order == "asc":
            raise errors.InvalidRequest("before walks backward; use it with order=desc")
        order = "desc"
    total, messages, has_more, etag = await store.messages_page(
        user.user_id, session_id, limit, order, after, before
    )
    check_read(if_match, etag)
    if not_modified(if_none_match, etag):
        return not_modified_response(etag)
    if not messages:
        cursor = None
    elif order is None:
        cursor = messages[0]["message_id"] if has_more else None
    else:
        # Always the page's last id, also at the end of the walk: an asc walk that has
        # caught up continues from it once newer messages arrive.
        cursor = messages[-1]["message_id"]
    return json_response(
        {
            "session_id": session_id,
            "messages": messages,
            "total": total,
            "returned": len(messages),
            "has_more": has_more,
            "next_cursor": cursor,
        },
        headers=tagged(etag),
    )


@router.get(
    "/messages/{message_id}",
    summary="Get one message",
    description="One message by its id.",
    response_model=models.Message,
    responses=error_responses(NOT_FOUND, errors.MessageNotFound),
)
async def get_message(
    session_id: SessionIdDep,
    message_id: Annotated[str, Path(description="Message id (`msg_` + 10 digits)")],
    user: UserDep,
    store: StoreDep,
) -> Response:
    if message_seq(message_id) is None:
        # Checked before any storage call, like a malformed session id.
        raise errors.MessageNotFound()
    return json_response(await store.message(user.user_id, session_id, message_id))


@router.get(
    "/stats",
    summary="Session statistics",
    description="Counters kept at append time: constant cost whatever the conversation length.",
    response_model=models.SessionStats,
    responses=error_responses(NOT_FOUND),
)
async def stats(session_id: SessionIdDep, user: UserDep, store: StoreDep) -> Response:
    return json_response(await store.stats(user.user_id, session_id))


@router.get(
    "/export",
    summary="Export the whole transcript",
    description=(
        "The session's fields and every message, streamed in chunks (never built in memory at "
        "once), as JSON (default) or markdown (`text/markdown`), with a Content-Disposition "
        "file name."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The transcript",
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/SessionWithMessages"}
                },
                "text/markdown": {"schema": {"type": "string"}},
            },
        },
        **error_responses(NOT_FOUND),
    },
)
async def export(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    format: Literal["json", "markdown"] = "json",
) -> Response:
    session = await store.get(user.user_id, session_id)
    upto = session.last_seq
    if format == "markdown":
        body = markdown_transcript(store, user.user_id, session, upto)
        media, ext = "text/markdown; charset=utf-8", "md"
    else:
        body = json_transcript(store, user.user_id, session, upto)
        media, ext = "application/json", "json"
    return StreamingResponse(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{session_id}.{ext}"'},
    )


__all__ = ["message_seq", "router"]
