"""The service's error tree. Each leaf maps to exactly one HTTP status and `code`.

    ServiceError
    ├── IdentityError                      401/400  (who is calling)
    │   ├── MissingIdentity                401 missing_user_id
    │   ├── InvalidIdentity                400 invalid_user_id
    │   ├── AmbiguousIdentity              400 ambiguous_identity
    │   ├── InvalidRoles                   400 invalid_roles_header
    │   └── UntrustedCaller                401 untrusted_caller
    ├── Forbidden                          403 forbidden
    ├── NotFound                           404
    │   ├── SessionNotFound                404 session_not_found
    │   └── MessageNotFound                404 message_not_found
    ├── Conflict                           409
    │   ├── InvalidStatusTransition        409 invalid_status_transition
    │   ├── SessionArchived                409 session_archived
    │   ├── NotArchived                    409 not_archived
    │   ├── SessionFull                    409 session_full
    │   ├── SessionLimitReached            409 session_limit_reached
    │   ├── ToolCallAlreadyAnswered        409 tool_call_already_answered
    │   ├── DuplicateToolCall              409 duplicate_tool_call
    │   ├── SummaryOutOfOrder              409 summary_out_of_order
    │   ├── SessionRewound                 409 session_rewound
    │   ├── SearchExpired                  409 search_expired
    │   └── TooManyCases                   409 too_many_cases
    ├── PreconditionFailed                 412 precondition_failed (If-Match)
    ├── RequestError                       4xx  (the request itself)
    │   ├── RequestTimeout                 408 request_timeout
    │   ├── RequestTooLarge                413 request_too_large
    │   ├── MessageTooLarge                413 message_too_large
    │   ├── InvalidRequest                 422 validation_error
    │   ├── IdempotencyKeyReused           422 idempotency_key_reused
    │   ├── UnknownToolCall                422 unknown_tool_call
    │   ├── UnknownMessage                 422 unknown_message
    │   ├── RateLimited                    429 rate_limited
    │   └── TooManyWatchers                429 too_many_watchers
    ├── FeedUnavailable                    503 feed_unavailable (worker full, shutting down)
    └── StorageError                       5xx
        ├── StorageUnavailable             503 storage_unavailable
        └── StorageFull                    507 storage_full

Routers and the store raise these; one exception handler turns them into
`{"detail": ..., "code": ...}` responses, plus the error's extras (`field`,
`current_status`, `etag`, a batch append's `index`) when it has them.
`HTTPException` is never raised inside.
"""

from __future__ import annotations

from typing import ClassVar, Self


class ServiceError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_detail: ClassVar[str] = "Internal error"
    #: The request itself is at fault: an unknown session answers 404 first.
    about_request: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **extra: str | int) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)

    def body(self) -> dict[str, str | int]:
        """The JSON body: `detail`, `code` and the extras a client can act on."""
        return {"detail": self.detail, "code": self.code, **self.extra}

    def in_batch(self, index: int) -> Self:
        """This error as a batch append answers it: about its message at `index` (from 0)."""
        self.detail = f"messages[{index}]: {self.detail}"
        self.extra["index"] = index
        self.args = (self.detail,)
        return self

    @property
    def headers(self) -> dict[str, str]:
        return {}


class IdentityError(ServiceError):
    status_code = 400


class MissingIdentity(IdentityError):
    status_code = 401
    code = "missing_user_id"
    default_detail = "X-User-ID header is required"


class InvalidIdentity(IdentityError):
    code = "invalid_user_id"
    default_detail = "X-User-ID must be 1-256 characters without control characters"


class AmbiguousIdentity(IdentityError):
    code = "ambiguous_identity"
    default_detail = "More than one X-User-ID, X-User-Email or X-User-Roles header was sent"


class InvalidRoles(IdentityError):
    code = "invalid_roles_header"
    default_detail = (
        "X-User-Roles must be a JSON array of strings or a comma-separated list of "
        "tokens made of letters, digits and _ . : -"
    )


class UntrustedCaller(IdentityError):
    status_code = 401
    code = "untrusted_caller"
    default_detail = "Missing or wrong X-Gateway-Token"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"
    default_detail = "This operation requires the admin role"


class NotFound(ServiceError):
    status_code = 404


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_detail = "Session not found"


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_detail = "Message not found"


class Conflict(ServiceError):
    status_code = 409


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"
    default_detail = "This status change is not allowed"


class SessionArchived(Conflict):
    code = "session_archived"
    default_detail = "The session is archived and read-only; restore it first"


class NotArchived(Conflict):
    code = "not_archived"
    default_detail = "The session is not archived"


class SessionFull(Conflict):
    code = "session_full"
    default_detail = "The session has reached MAX_MESSAGES_PER_SESSION"


class SessionLimitReached(Conflict):
    code = "session_limit_reached"
    default_detail = "The user has reached MAX_SESSIONS_PER_USER live sessions"


class ToolCallAlreadyAnswered(Conflict):
    code = "tool_call_already_answered"
    default_detail = "This tool call already has its result"


class DuplicateToolCall(Conflict):
    code = "duplicate_tool_call"
    default_detail = "A tool call with this id already exists in the session"


class SummaryOutOfOrder(Conflict):
    code = "summary_out_of_order"
    default_detail = "A summary must reach at least as far as the latest summary"


class SessionRewound(Conflict):
    code = "session_rewound"
    default_detail = (
        "The session was rewound again and again while this fork or rewind copied it; retry"
    )


class SearchExpired(Conflict):
    code = "search_expired"
    default_detail = (
        "The search walk's snapshot is gone: it expired (10 minutes after its last page) or "
        "newer walks dropped it (a user keeps 4); start the walk again from the first page"
    )


class TooManyCases(Conflict):
    code = "too_many_cases"
    default_detail = "The session has MAX_CASES_PER_SESSION linked cases; unlink one first"


class PreconditionFailed(ServiceError):
    status_code = 412
    code = "precondition_failed"
    default_detail = (
        "If-Match does not match the current ETag (the resource changed since you read it), "
        "or If-None-Match does"
    )

    def __init__(self, etag: str, detail: str | None = None) -> None:
        super().__init__(detail, etag=etag)
        self.etag = etag

    @property
    def headers(self) -> dict[str, str]:
        return {"ETag": self.etag}


class RequestError(ServiceError):
    status_code = 400


class RequestTimeout(RequestError):
    status_code = 408
    code = "request_timeout"
    default_detail = "The request body was not received within REQUEST_BODY_TIMEOUT"


class RequestTooLarge(RequestError):
    status_code = 413
    code = "request_too_large"
    default_detail = "The request body exceeds MAX_REQUEST_BYTES"


class MessageTooLarge(RequestError):
    status_code = 413
    code = "message_too_large"
    default_detail = "Message content exceeds MAX_MESSAGE_BYTES"
    about_request = True


class InvalidRequest(RequestError):
    status_code = 422
    code = "validation_error"
    default_detail = "The request is invalid"
    about_request = True


class IdempotencyKeyReused(RequestError):
    status_code = 422
    code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request"
    about_request = True


class UnknownToolCall(RequestError):
    status_code = 422
    code = "unknown_tool_call"
    default_detail = "tool_call_id names no tool call of an earlier assistant message"


class UnknownMessage(RequestError):
    status_code = 422
    code = "unknown_message"
    default_detail = "covers_through names no message of this session"


class RateLimited(RequestError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests; slow down"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyWatchers(RequestError):
    status_code = 429
    code = "too_many_watchers"
    default_detail = (
        "This user already watches MAX_WATCHERS_PER_USER sessions; close a feed before "
        "opening another"
    )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class FeedUnavailable(ServiceError):
    """This worker cannot hold another feed now; another worker or instance can."""

    status_code = 503
    code = "feed_unavailable"
    default_detail = "This instance holds no more change feeds now; retry (elsewhere) shortly"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class StorageError(ServiceError):
    status_code = 503


class StorageUnavailable(StorageError):
    code = "storage_unavailable"
    default_detail = "Session storage is unavailable; retry shortly"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class StorageFull(StorageError):
    status_code = 507
    code = "storage_full"
    default_detail = "Session storage is full; nothing was written"


#: Every error class the API can answer with, for docs and the OpenAPI document.
ALL_ERRORS: tuple[type[ServiceError], ...] = (
    MissingIdentity,
    InvalidIdentity,
    AmbiguousIdentity,
    InvalidRoles,
    UntrustedCaller,
    Forbidden,
    SessionNotFound,
    MessageNotFound,
    InvalidStatusTransition,
    SessionArchived,
    NotArchived,
    SessionFull,
    SessionLimitReached,
    ToolCallAlreadyAnswered,
    DuplicateToolCall,
    SummaryOutOfOrder,
    SessionRewound,
    SearchExpired,
    TooManyCases,
    PreconditionFailed,
    RequestTimeout,
    RequestTooLarge,
    MessageTooLarge,
    InvalidRequest,
    IdempotencyKeyReused,
    UnknownToolCall,
    UnknownMessage,
    RateLimited,
    TooManyWatchers,
    FeedUnavailable,
    StorageUnavailable,
    StorageFull,
)
