"""What an agent builds its prompt from: the token-budgeted window and summaries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from session_service import errors
from session_service.api.conditional import precheck, tagged
from session_service.api.deps import (
    IdempotencyKeyDep,
    MessagesIfMatchDep,
    SessionIdDep,
    SettingsDep,
    StoreDep,
    UserDep,
)
from session_service.api.responses import error_responses, json_response, tagged_responses
from session_service.domain import prompt
from session_service.domain.ids import SUMMARY_ID_RE, message_seq, summary_seq
from session_service.domain.tokens import (
    MAX_WINDOW_TOKENS,
    WINDOW_MAX_BYTES,
    WINDOW_MAX_MESSAGES,
)

router = APIRouter(prefix="/api/v1/sessions/{session_id}", tags=["prompt"])
NOT_FOUND = errors.SessionNotFound


@router.get(
    "/window",
    summary="The prompt window within a token budget",
    description=(
        "The latest summary (or null) and the newest messages after it whose tokens, added to "
        "the summary's, fit within `max_tokens`: oldest first, with no gap, and an assistant "
        "message with `tool_calls` is included together with its tool results or not at all. "
        "`truncated` is true when a message after the summary was left out; a summary that "
        "alone exceeds `max_tokens` comes back with no messages and `truncated: true`. "
        f"At most {WINDOW_MAX_MESSAGES} messages and {WINDOW_MAX_BYTES // 1024} KiB of stored "
        "message data (a longer fit is cut there, `truncated: true`). "
        "Its cost depends on what it returns, not on the length of the conversation."
    ),
    response_model=prompt.Window,
    responses=error_responses(NOT_FOUND),
)
async def window(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    max_tokens: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_WINDOW_TOKENS,
            description="The token budget for the summary and the messages together",
        ),
    ],
) -> Response:
    return json_response(await store.window(user.user_id, session_id, max_tokens))


@router.post(
    "/summaries",
    summary="Summarize the conversation up to a message",
    description=(
        "Stores a summary that stands in for every message up to and including "
        "`covers_through` in the prompt window. Nothing is deleted: pages, get-one and export "
        "still show every message, and export also carries the summaries. It must reach at "
        "least as far as the latest summary. Summaries count toward MAX_MESSAGES_PER_SESSION "
        "and their content toward MAX_MESSAGE_BYTES, like messages. Safe to retry with "
        "`Idempotency-Key`: the retry answers the original summary and stores nothing new. "
        "A summary changes the messages collection's `ETag` (answered here), and `If-Match` "
        "makes it conditional on it, so two summarizers, or a summarizer and a writer, see "
        "each other."
    ),
    status_code=201,
    response_model=prompt.Summary,
    responses={
        **tagged_responses(201, description="Stored"),
        **error_responses(
            NOT_FOUND,
            errors.PreconditionFailed,
            errors.SessionArchived,
            errors.SummaryOutOfOrder,
            errors.SessionFull,
            errors.UnknownMessage,
            errors.MessageTooLarge,
            errors.IdempotencyKeyReused,
            body=True,
        ),
    },
)
async def create_summary(
    session_id: SessionIdDep,
    body: prompt.SummaryCreate,
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
    # If-Match before Idempotency-Key: dependencies resolve in this order, and a stale
    # If-Match must answer 412 before a malformed key's 422 (issue 14's error order).
    if_match: MessagesIfMatchDep,
    idem: IdempotencyKeyDep,
) -> Response:
    if len(body.content.encode("utf-8")) > settings.max_message_bytes:
        await precheck(store, user.user_id, session_id, "m", if_match)  # 404, 412 first
        raise errors.MessageTooLarge(
            f"Summary content exceeds {settings.max_message_bytes} bytes (MAX_MESSAGE_BYTES)"
        )
    seq = message_seq(body.covers_through)
    if seq is None:  # msg_0000000000: well-formed, but never a message
        await precheck(store, user.user_id, session_id, "m", if_match)
        raise errors.UnknownMessage()
    summary, _ = await store.summarize(
        user.user_id,
        session_id,
        body.content,
        seq,
        body.token_count,
        body.metadata,
        idem,
        if_match,
    )
    return json_response(summary, 201, tagged(summary.etag))


SummaryCursor = Annotated[str | None, Query(max_length=14, pattern=SUMMARY_ID_RE.pattern)]


@router.get(
    "/summaries",
    summary="List summaries, newest first",
    description=(
        "The session's summaries, newest first. `next_cursor` is the oldest summary id of the "
        "page, to pass as `before` for the next page; cursors are exclusive."
    ),
    response_model=prompt.SummaryList,
    responses=error_responses(NOT_FOUND),
)
async def list_summaries(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: SummaryCursor = None,
) -> Response:
    total, summaries, more = await store.summaries_page(
        user.user_id, session_id, limit, (summary_seq(before) or 0) if before else None
    )
    return json_response(
        {
            "session_id": session_id,
            "summaries": summaries,
            "total": total,
            "has_more": more,
            "next_cursor": summaries[-1]["summary_id"] if more else None,
        }
    )
