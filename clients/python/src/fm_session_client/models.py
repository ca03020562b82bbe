"""Typed models of the service's requests and answers, one per schema of its OpenAPI
document (docs/api/openapi.json); a test compares the two, field by field.

Answers ignore fields this client does not know, so an older client keeps working
against a newer service; timestamps stay the service's ISO 8601 strings, exactly as sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SessionStatus = Literal["active", "in_progress", "completed", "archived", "abandoned"]
Role = Literal["user", "assistant", "system", "tool"]


class Answer(BaseModel):
    """An answer of the service: unknown fields are ignored, not an error."""

    model_config = ConfigDict(extra="ignore")


class Body(BaseModel):
    """A request body: the service refuses unknown fields, so does this client."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The body as sent: fields left unset are not sent (so they keep their server default)."""
        return self.model_dump(mode="json", exclude_unset=True)


# ---- request bodies ----


class ToolCall(Body):
    """One call an assistant message asks for; its result is a later `tool` message."""

    id: str
    name: str
    #: Not sent unless given (the service then stores none).
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class MessageCreate(Body):
    role: Role
    content: str = ""
    metadata: dict[str, Any] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    token_count: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.metadata is not None:
            body["metadata"] = self.metadata
        if self.tool_calls is not None:
            body["tool_calls"] = [call.to_json() for call in self.tool_calls]
        if self.tool_call_id is not None:
            body["tool_call_id"] = self.tool_call_id
        if self.token_count is not None:
            body["token_count"] = self.token_count
        return body


class SessionCreate(Body):
    title: str | None = None
    description: str | None = None
    session_type: str | None = None
    client_id: str | None = None
    metadata: dict[str, Any] | None = None
    timeout_minutes: int | None = None


class SessionUpdate(Body):
    """Only the fields given are sent; `None` for title or description clears it."""

    title: str | None = None
    description: str | None = None
    status: SessionStatus | None = None
    metadata: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timeout_minutes: int | None = None


class SummaryCreate(Body):
    content: str
    covers_through: str
    token_count: int | None = None
    metadata: dict[str, Any] | None = None


class ForkRequest(Body):
    through_message_id: str | None = None
    title: str | None = None


class RewindRequest(Body):
    to_message_id: str


class CaseLinkRequest(Body):
    case_id: str


class SearchRequest(Body):
    status: SessionStatus | list[SessionStatus] | None = None
    query: str | None = None
    metadata: dict[str, Any] | None = None
    session_type: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    updated_after: str | None = None
    updated_before: str | None = None
    include_archived: bool = False
    limit: int = 50
    cursor: str | None = None


class MessageBatch(Body):
    messages: list[MessageCreate]

    def to_json(self) -> dict[str, Any]:
        return {"messages": [message.to_json() for message in self.messages]}


# ---- answers ----


class ForkedFrom(Answer):
    session_id: str
    message_id: str | None


class Session(Answer):
    session_id: str
    user_id: str
    title: str | None
    description: str | None
    status: SessionStatus
    session_type: str
    client_id: str | None
    metadata: dict[str, Any]
    context: dict[str, Any]
    created_at: str
    updated_at: str
    last_activity_at: str
    expires_at: str | None
    timeout_minutes: float
    message_count: int
    forked_from: ForkedFrom | None = None
    #: The session's ETag (from the answer's header), for `if_match=`.
    etag: str | None = Field(default=None, exclude=True)


class CreatedSession(Session):
    session_resumed: bool


class ReturnedToolCall(Answer):
    id: str
    name: str
    arguments: dict[str, Any] | str | None = None


class Message(Answer):
    message_id: str
    role: Role
    content: str
    timestamp: str
    metadata: dict[str, Any]
    token_count: int
    token_count_estimated: bool
    tool_calls: list[ReturnedToolCall] | None = None
    tool_call_id: str | None = None


class SessionWithMessages(Session):
    messages: list[Message] | None = None


class AppendedMessage(Answer):
    session_id: str
    message: Message
    total_messages: int
    #: The messages collection's new ETag.
    etag: str | None = Field(default=None, exclude=True)


class AppendedBatch(Answer):
    messages: list[Message]
    #: The messages collection's new ETag.
    etag: str | None = Field(default=None, exclude=True)


class MessagePage(Answer):
    session_id: str
    messages: list[Message]
    total: int
    returned: int
    has_more: bool
    next_cursor: str | None
    etag: str | None = Field(default=None, exclude=True)


class SessionList(Answer):
    sessions: list[Session]
    total: int
    limit: int
    offset: int


class SearchResult(Answer):
    sessions: list[Session]
    total: int
    limit: int
    next_cursor: str | None


class DeletedSessions(Answer):
    deleted: int


class StatusCounts(Answer):
    active: int
    in_progress: int
    completed: int
    abandoned: int
    archived: int


class UserStatistics(Answer):
    user_id: str
    total_sessions: int
    by_status: StatusCounts
    total_messages: int
    oldest_activity_at: str | None
    newest_activity_at: str | None


class Heartbeat(Answer):
    session_id: str
    status: SessionStatus
    last_activity_at: str
    expires_at: str | None


class ContextCleanup(Answer):
    success: bool
    session_id: str
    cleared_keys: list[str]


class RecoveryDetails(Answer):
    can_restore: bool
    restore_endpoint: str | None
    can_resume: bool


class RecoveryInfo(Answer):
    session_id: str
    user_id: str
    status: SessionStatus
    created_at: str
    last_activity_at: str
    expires_at: str | None
    message_count: int
    state_summary: dict[str, Any]
    recovery_info: RecoveryDetails


class SessionStats(Answer):
    session_id: str
    status: SessionStatus
    message_count: int
    user_message_count: int
    assistant_message_count: int
    system_message_count: int
    tool_message_count: int
    total_tokens: int
    total_tokens_by_role: dict[Role, int]
    first_message_at: str | None
    last_message_at: str | None
    duration_seconds: float
    created_at: str
    last_activity_at: str
    expires_at: str | None


class Summary(Answer):
    summary_id: str
    covers_through: str
    content: str
    token_count: int
    token_count_estimated: bool
    created_at: str
    metadata: dict[str, Any]


class SummaryList(Answer):
    session_id: str
    summaries: list[Summary]
    total: int
    has_more: bool
    next_cursor: str | None


class Window(Answer):
    summary: Summary | None
    messages: list[Message]
    total_tokens: int
    truncated: bool
    first_message_id: str | None


class Rewound(Answer):
    removed: int
    last_message_id: str | None
    etag: str | None = Field(default=None, exclude=True)


class LinkedCase(Answer):
    model_config = ConfigDict(extra="allow")

    case_id: str
    linked: bool
    linked_at: str | None
    title: str | None = None
    status: str | None = None


class CaseLinkResult(Answer):
    session_id: str
    case_id: str
    linked: bool
    linked_at: str


class CaseList(Answer):
    session_id: str
    cases: list[LinkedCase]
    total: int
    case_service: Literal["available", "unavailable"]


class CleanupReport(Answer):
    cleaned_sessions: int
    scanned: int
    timestamp: str


class ErasureReport(Answer):
    user_id: str
    deleted_sessions: int
    deleted_keys: int


class ServiceInfo(Answer):
    service: str
    version: str
    environment: str
    docs: str
    openapi: str
    storage_mode: str


class Health(Answer):
    status: Literal["ok"]
    service: str
    version: str


class Readiness(Answer):
    status: Literal["ready", "unavailable"]
    storage: str
    storage_mode: str
    latency_ms: float | None


class ErrorBody(Answer):
    detail: str
    code: str
    field: str | None = None
    current_status: str | None = None
    etag: str | None = None
    index: int | None = None


# ---- the change feed (docs/events.md) ----

FeedEventKind = Literal["message", "summary", "session", "rewound", "deleted"]


class FeedEventBody(Answer):
    """One event of a header-only poll, as the wire has it (`feed.py` types its `data`)."""

    event: FeedEventKind
    #: A message event's message_id, else None.
    id: str | None = None
    data: dict[str, Any]


class FeedPoll(Answer):
    """A header-only poll's answer: send `last_event_id` back as Last-Event-ID and `etag`
    as If-None-Match to miss nothing between two polls."""

    events: list[FeedEventBody]
    last_event_id: str
    #: The session's ETag (from the answer's header), for the next `if_none_match=`.
    etag: str | None = Field(default=None, exclude=True)
