"""Branching a conversation: fork a session at a message, rewind it to a message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from session_service import errors
from session_service.api.conditional import tagged
from session_service.api.deps import (
    IdempotencyKeyDep,
    MessagesIfMatchDep,
    SessionIdDep,
    StoreDep,
    UserDep,
)
from session_service.api.responses import error_responses, json_response, tagged_responses
from session_service.domain import branches, models
from session_service.domain.ids import message_id
from session_service.observability import metrics

router = APIRouter(prefix="/api/v1/sessions/{session_id}", tags=["branches"])
NOT_FOUND = errors.SessionNotFound


@router.post(
    "/fork",
    summary="Fork a session at a message",
    description=(
        "A new session of the same user holding copies of the messages through "
        "`through_message_id` (default: all) with their ids, roles, tool calls and token "
        "counts (`msg_0000000000`: none), the summaries that cover only copied messages, the "
        "description, metadata "
        "and session type, and `forked_from`. The fork is complete when the 201 arrives "
        "(it is copied in bounded slices before it becomes visible, so Redis never blocks); "
        "afterwards the two sessions are independent. It counts toward "
        "MAX_SESSIONS_PER_USER (409 at the limit, whatever SESSION_LIMIT_POLICY says). Safe "
        "to retry with `Idempotency-Key`."
    ),
    status_code=201,
    response_model=models.Session,
    responses={
        **tagged_responses(201, description="Forked"),
        **error_responses(
            NOT_FOUND,
            errors.MessageNotFound,
            errors.SessionLimitReached,
            errors.SessionRewound,
            errors.IdempotencyKeyReused,
            body=True,
        ),
    },
)
async def fork(
    session_id: SessionIdDep,
    user: UserDep,
    store: StoreDep,
    idem: IdempotencyKeyDep,
    body: Annotated[branches.ForkRequest | None, Body()] = None,
) -> Response:
    body = body or branches.ForkRequest()
    through = branches.seq_of(body.through_message_id) if body.through_message_id else None
    session = await store.fork(user.user_id, session_id, through, body.title, idem)
    metrics.SESSIONS.labels("created").inc()
    return json_response(session, 201, tagged(session.etag))


@router.post(
    "/rewind",
    summary="Rewind a session to a message",
    description=(
        "Keeps the messages through `to_message_id` and removes every later one, "
        "atomically: counts, token totals, tool-call bookkeeping (a kept call whose answer "
        "is removed is unanswered again) and the summaries that covered removed messages "
        "go with them. Message ids are never reused: the next append continues after the "
        "highest id ever given. `If-Match` is compared with the messages collection's ETag; "
        "the answer carries the new one. Long rewinds are copied in bounded slices and "
        "swapped in at once, so Redis never blocks and readers see before or after, never "
        "half. `msg_0000000000` removes every message. An archived session refuses it (409)."
    ),
    response_model=branches.Rewound,
    responses={
        **tagged_responses(description="Rewound"),
        **error_responses(
            NOT_FOUND,
            errors.MessageNotFound,
            errors.PreconditionFailed,
            errors.SessionArchived,
            errors.SessionRewound,
            body=True,
        ),
    },
)
async def rewind(
    session_id: SessionIdDep,
    body: branches.RewindRequest,
    user: UserDep,
    store: StoreDep,
    if_match: MessagesIfMatchDep,
) -> Response:
    to = branches.seq_of(body.to_message_id)
    removed, etag = await store.rewind(user.user_id, session_id, to, if_match)
    last = message_id(to) if to else None
    return json_response({"removed": removed, "last_message_id": last}, headers=tagged(etag))
