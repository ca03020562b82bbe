"""Request and response shapes of the public API.

Requests are validated here; responses are built by the store as plain dicts and
serialized once with orjson, so these response models exist to document the
API (OpenAPI) and are not re-validated per request.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from session_service.domain.status import SessionStatus
from session_service.domain.text import NOT_UNICODE, check_json_bounds, lone_surrogate
from session_service.domain.tokens import MAX_TOOL_CALLS, TokenCount, ToolCall, ToolCallId

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_JSON_KEYS = 64
MAX_JSON_BYTES = 16 * 1024
MAX_JSON_DEPTH = 5
MAX_KEY_LENGTH = 128


def check_json_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Bounds shared by `metadata` and `context`: keys, size, depth, key length."""
    if value is None:
        return None
    if len(value) > MAX_JSON_KEYS:
        raise ValueError(f"at most {MAX_JSON_KEYS} keys")
    for key in value:
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"keys must be 1-{MAX_KEY_LENGTH} characters")
    return check_json_bounds(value, MAX_JSON_BYTES, MAX_JSON_DEPTH)


#: A date and a time of day, as ISO 8601 writes them (the offset may follow; none means UTC).
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    # The schema says an ISO 8601 date-time string; lax pydantic would also take a number,
    # a string of digits (as a Unix time: "0" is 1970) or a date alone.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time string")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_object)]
IsoDatetime = Annotated[datetime, BeforeValidator(_iso_text)]
Title = Annotated[str, Field(max_length=MAX_TITLE)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION)]
SessionType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ClientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
CaseId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Role = Literal["user", "assistant", "system", "tool"]
DEFAULT_SESSION_TYPE = "troubleshooting"


class Strict(BaseModel):
    """A request body: no unknown fields, and text that is Unicode throughout."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _unicode_text(cls, data: Any) -> Any:
        # One check for every string of the body (keys, nested metadata, tool-call
        # arguments), before any field validator can trip over it: orjson serializes
        # the whole body in one C call and only refuses it when something is off.
        try:
            orjson.dumps(data)
        except (orjson.JSONEncodeError, TypeError):
            where = lone_surrogate(data)
            if where is not None:
                raise PydanticCustomError(
                    "invalid_unicode", "{where}" + NOT_UNICODE, {"where": _prefix(where)}
                ) from None
        return data


def _prefix(path: tuple[str, ...]) -> str:
    return ".".join(path) + ": " if path else ""


TimeoutMinutes = Annotated[
    StrictInt,
    Field(ge=1, description="Inactivity timeout; bounded by SESSION_MIN/MAX_TIMEOUT_MINUTES"),
]


class SessionCreate(Strict):
    """Every field is optional and `null` means "not given": the original service's
    callers send `"session_type": null`, and must get the default, not a 422."""

    title: Title | None = None
    description: Description | None = None
    session_type: SessionType | None = Field(
        DEFAULT_SESSION_TYPE, description="null means the default"
    )
    client_id: ClientId | None = None
    metadata: JsonObject | None = None
    timeout_minutes: TimeoutMinutes | None = None

    @field_validator("session_type")
    @classmethod
    def _default_type(cls, value: str | None) -> str:
        # One canonical body, so `null` and an omitted field share an idempotency fingerprint.
        return value or DEFAULT_SESSION_TYPE


class SessionUpdate(Strict):
    title: Title | None = Field(None, description="null clears it")
    description: Description | None = Field(None, description="null clears it")
    status: SessionStatus | None = Field(None, description="null means no change")
    metadata: JsonObject | None = Field(None, description="Merged; a key set to null is removed")
    context: JsonObject | None = Field(None, description="Merged; a key set to null is removed")
    timeout_minutes: TimeoutMinutes | None = Field(
        None,
        description="New inactivity timeout, same bounds as on create; counts as activity, so "
        "expires_at is recomputed from now. null means no change",
    )


class MessageCreate(Strict):
    role: Role
    content: str = Field(
        "",
        description="At most MAX_MESSAGE_BYTES UTF-8 bytes; non-empty unless the message "
        "carries tool_calls",
    )
    metadata: JsonObject | None = None
    tool_calls: list[ToolCall] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TOOL_CALLS,
        description="assistant only: the tools it calls; ids unique within the session",
    )
    tool_call_id: ToolCallId | None = Field(
        None, description="tool only (and required): the id of an earlier assistant tool call"
    )
    token_count: TokenCount | None = Field(
        None, description="The caller's own count; absent = estimated (see docs/data-model.md)"
    )

    @model_validator(mode="after")
    def _tool_rules(self) -> MessageCreate:
        if self.tool_calls is not None:
            if self.role != "assistant":
                raise ValueError("only an assistant message may carry tool_calls")
            ids = [call.id for call in self.tool_calls]
            if len(set(ids)) != len(ids):
                raise ValueError("tool call ids must be unique")
        elif not self.content:
            raise ValueError("content must not be empty (unless the message carries tool_calls)")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        return self


MAX_BATCH_MESSAGES = 64


class MessageBatch(Strict):
    messages: list[MessageCreate] = Field(
        min_length=1,
        max_length=MAX_BATCH_MESSAGES,
        description=f"1-{MAX_BATCH_MESSAGES} messages, each with the single append's body and "
        "rules; a tool message may answer a tool call of an earlier message of the batch",
    )


class CaseLinkRequest(Strict):
    case_id: CaseId


class SearchRequest(Strict):
    status: SessionStatus | list[SessionStatus] | None = None
    query: str | None = Field(None, max_length=200)
    metadata: JsonObject | None = None
    session_type: SessionType | None = None
    created_after: IsoDatetime | None = None
    created_before: IsoDatetime | None = None
    updated_after: IsoDatetime | None = None
    updated_before: IsoDatetime | None = None
    include_archived: StrictBool = False
    limit: StrictInt = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)


# ---- responses (documentation only; built as dicts by the store) ----


class ForkedFrom(BaseModel):
    session_id: str
    message_id: str | None = Field(description="The last message copied (null: none)")


class Session(BaseModel):
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
    expires_at: str | None = Field(description="null for an archived session kept forever")
    timeout_minutes: float
    message_count: int
    forked_from: ForkedFrom | None = Field(
        None, description="The session and message this one was forked from (null if not a fork)"
    )


class Message(BaseModel):
    message_id: str
    role: Role
    content: str
    timestamp: str
    metadata: dict[str, Any]
    token_count: int
    token_count_estimated: bool = Field(description="true when the service estimated the count")
    tool_calls: list[ToolCall] | None = Field(None, description="Only on messages that have them")
    tool_call_id: str | None = Field(None, description="Only on tool messages")


class SessionWithMessages(Session):
    messages: list[Message] | None = Field(None, description="Only with include_messages=true")


class CreatedSession(Session):
    session_resumed: bool


class SessionList(BaseModel):
    sessions: list[Session]
    total: int
    limit: int
    offset: int


class SearchResult(BaseModel):
    sessions: list[Session]
    total: int
    limit: int
    next_cursor: str | None


class Heartbeat(BaseModel):
    session_id: str
    status: SessionStatus
    last_activity_at: str
    expires_at: str | None


class AppendedMessage(BaseModel):
    session_id: str
    message: Message
    total_messages: int


class AppendedBatch(BaseModel):
    messages: list[Message] = Field(description="The stored messages, in the batch's order")


class MessagePage(BaseModel):
    session_id: str
    messages: list[Message]
    total: int
    returned: int
    has_more: bool
    next_cursor: str | None


class SessionStats(BaseModel):
    session_id: str
    status: SessionStatus
    message_count: int
    user_message_count: int
    assistant_message_count: int
    system_message_count: int
    tool_message_count: int
    total_tokens: int = Field(description="Tokens of every message (counted or estimated)")
    total_tokens_by_role: dict[Role, int]
    first_message_at: str | None
    last_message_at: str | None
    duration_seconds: float
    created_at: str
    last_activity_at: str
    expires_at: str | None


class StatusCounts(BaseModel):
    active: int
    in_progress: int
    completed: int
    abandoned: int
    archived: int


class UserStatistics(BaseModel):
    user_id: str
    total_sessions: int = Field(description="Live sessions, archived included")
    by_status: StatusCounts
    total_messages: int = Field(description="Messages in those sessions")
    oldest_activity_at: str | None = Field(description="Least recent last_activity_at")
    newest_activity_at: str | None = Field(description="Most recent last_activity_at")


class DeletedSessions(BaseModel):
    deleted: int


class ContextCleanup(BaseModel):
    success: bool
    session_id: str
    cleared_keys: list[str]


class CleanupReport(BaseModel):
    cleaned_sessions: int
    scanned: int
    timestamp: str


class RecoveryDetails(BaseModel):
    can_restore: bool
    restore_endpoint: str | None
    can_resume: bool


class RecoveryInfo(BaseModel):
    session_id: str
    user_id: str
    status: SessionStatus
    created_at: str
    last_activity_at: str
    expires_at: str | None
    message_count: int
    state_summary: dict[str, Any]
    recovery_info: RecoveryDetails


class LinkedCase(BaseModel):
    model_config = ConfigDict(extra="allow")
    case_id: str
    linked: bool = Field(description="True when linked through this service")
    linked_at: str | None
    title: str | None = None
    status: str | None = None


class CaseList(BaseModel):
    session_id: str
    cases: list[LinkedCase]
    total: int
    case_service: Literal["available", "unavailable"]


class CaseLinkResult(BaseModel):
    session_id: str
    case_id: str
    linked: bool
    linked_at: str


class ErasureReport(BaseModel):
    user_id: str
    deleted_sessions: int
    deleted_keys: int


class FeedEventBody(BaseModel):
    """One change feed event of a header-only poll (docs/events.md)."""

    event: Literal["message", "summary", "session", "rewound", "deleted"]
    id: str | None = Field(None, description="A message event's message_id, else null")
    data: dict[str, Any]


class FeedPoll(BaseModel):
    events: list[FeedEventBody]
    last_event_id: str = Field(
        description="Send it back as Last-Event-ID: the next poll starts after it"
    )


class ErrorBody(BaseModel):
    detail: str
    code: str
    field: str | None = Field(
        default=None, description="The request field at fault, when one is (e.g. `cursor`)"
    )
    current_status: str | None = Field(
        default=None, description="On `invalid_status_transition`: the session's status now"
    )
    etag: str | None = Field(
        default=None, description="On `precondition_failed`: the current ETag (also in `ETag`)"
    )
    index: int | None = Field(
        default=None,
        description="On a batch append: the position (from 0) of the message at fault",
    )


class Health(BaseModel):
    status: Literal["ok"]
    service: str
    version: str


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    storage: str
    storage_mode: str
    latency_ms: float | None


class ServiceInfo(BaseModel):
    service: str
    version: str
    environment: str
    docs: str
    openapi: str
    storage_mode: str
