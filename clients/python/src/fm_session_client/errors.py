"""The client's error tree: one exception per documented error `code`.

    SessionServiceError
    ├── TransportError                 no answer within the deadline (last cause attached)
    └── ApiError                       the service answered an error (`status`, `code`, `detail`)
        ├── IdentityError              401/400
        │   ├── MissingIdentity        missing_user_id
        │   ├── InvalidIdentity        invalid_user_id
        │   ├── AmbiguousIdentity      ambiguous_identity
        │   ├── InvalidRoles           invalid_roles_header
        │   └── UntrustedCaller        untrusted_caller
        ├── Forbidden                  forbidden
        ├── NotFound                   404 (not_found: no such route)
        │   ├── SessionNotFound        session_not_found
        │   └── MessageNotFound        message_not_found
        ├── Conflict                   409
        │   ├── InvalidStatusTransition, SessionArchived, NotArchived, SessionFull,
        │   ├── SessionLimitReached, ToolCallAlreadyAnswered, DuplicateToolCall,
        │   └── SummaryOutOfOrder, SessionRewound, SearchExpired, TooManyCases
        ├── PreconditionFailed         precondition_failed (`etag`: the current ETag)
        ├── RequestError               4xx about the request itself
        │   ├── RequestTimeout, RequestTooLarge, MessageTooLarge, InvalidRequest,
        │   ├── IdempotencyKeyReused, UnknownToolCall, UnknownMessage
        │   └── RateLimited            rate_limited (`retry_after`)
        │       └── TooManyWatchers    too_many_watchers: the user's feeds are at the cap
        └── StorageError               5xx
            ├── StorageUnavailable     storage_unavailable (`retry_after`)
            │   └── FeedUnavailable    feed_unavailable: this instance holds no more feeds
            └── StorageFull            storage_full

An answer whose `code` this client does not know becomes the class of its status family
(`NotFound`, `Conflict`, `RequestError`, `StorageError`) or plain `ApiError`, so an older
client still raises something a caller can catch by kind.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SessionServiceError(Exception):
    """Everything this client raises about the service."""


class TransportError(SessionServiceError):
    """No usable answer before the operation's deadline: the last failure is `__cause__`.

    For a write that carried an Idempotency-Key it is safe to call again with the same key;
    for a write without one the outcome is unknown.
    """


class ApiError(SessionServiceError):
    """The service answered with an error body `{"detail", "code", ...}`."""

    code: ClassVar[str] = ""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.error_code = code
        self.detail = detail
        self.body: dict[str, Any] = body or {}
        self.headers: dict[str, str] = headers or {}

    @property
    def field(self) -> str | None:
        """The request field at fault, when the service names one."""
        value = self.body.get("field")
        return value if isinstance(value, str) else None

    @property
    def index(self) -> int | None:
        """In a batch append: the position of the offending message."""
        value = self.body.get("index")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")


class IdentityError(ApiError):
    pass


class MissingIdentity(IdentityError):
    code = "missing_user_id"


class InvalidIdentity(IdentityError):
    code = "invalid_user_id"


class AmbiguousIdentity(IdentityError):
    code = "ambiguous_identity"


class InvalidRoles(IdentityError):
    code = "invalid_roles_header"


class UntrustedCaller(IdentityError):
    code = "untrusted_caller"


class Forbidden(ApiError):
    code = "forbidden"


class NotFound(ApiError):
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"


class Conflict(ApiError):
    pass


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"

    @property
    def current_status(self) -> str | None:
        value = self.body.get("current_status")
        return value if isinstance(value, str) else None


class SessionArchived(Conflict):
    code = "session_archived"


class NotArchived(Conflict):
    code = "not_archived"


class SessionFull(Conflict):
    code = "session_full"


class SessionLimitReached(Conflict):
    code = "session_limit_reached"


class ToolCallAlreadyAnswered(Conflict):
    code = "tool_call_already_answered"


class DuplicateToolCall(Conflict):
    code = "duplicate_tool_call"


class SummaryOutOfOrder(Conflict):
    code = "summary_out_of_order"


class SessionRewound(Conflict):
    code = "session_rewound"


class SearchExpired(Conflict):
    """A search walk's cursor outlived its snapshot: walk again from the first page."""

    code = "search_expired"


class TooManyCases(Conflict):
    code = "too_many_cases"


class PreconditionFailed(ApiError):
    """If-Match did not hold: `etag` is the current one, to re-read or retry with."""

    code = "precondition_failed"

    @property
    def etag(self) -> str | None:
        value = self.body.get("etag")
        if isinstance(value, str):
            return value
        return self.headers.get("etag")


class RequestError(ApiError):
    pass


class RequestTimeout(RequestError):
    code = "request_timeout"


class RequestTooLarge(RequestError):
    code = "request_too_large"


class MessageTooLarge(RequestError):
    code = "message_too_large"


class InvalidRequest(RequestError):
    code = "validation_error"


class IdempotencyKeyReused(RequestError):
    code = "idempotency_key_reused"


class UnknownToolCall(RequestError):
    code = "unknown_tool_call"


class UnknownMessage(RequestError):
    code = "unknown_message"


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


class RateLimited(RequestError):
    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait (its `Retry-After`)."""
        return _retry_after(self.headers)


class TooManyWatchers(RateLimited):
    """The user already holds MAX_WATCHERS_PER_USER feeds: close one, or wait
    `retry_after`. A `RateLimited` so a caller that backs off on 429 handles it too."""

    code = "too_many_watchers"


class StorageError(ApiError):
    pass


class StorageUnavailable(StorageError):
    code = "storage_unavailable"

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked to wait (its `Retry-After`)."""
        return _retry_after(self.headers)


class FeedUnavailable(StorageUnavailable):
    """The instance holds MAX_WATCHERS_PER_WORKER feeds (or is shutting down).

    A `StorageUnavailable` because a caller handles it the same way: wait `retry_after`
    (1 s) and try again, most likely on another instance.
    """

    code = "feed_unavailable"


class StorageFull(StorageError):
    code = "storage_full"


#: Every documented error code and the exception it raises.
ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        MissingIdentity,
        InvalidIdentity,
        AmbiguousIdentity,
        InvalidRoles,
        UntrustedCaller,
        Forbidden,
        NotFound,
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
        StorageUnavailable,
        FeedUnavailable,
        StorageFull,
    )
}

_BY_STATUS: dict[int, type[ApiError]] = {
    401: IdentityError,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    429: RateLimited,
    503: StorageError,
    507: StorageFull,
}


def error_for(status: int, body: Any, headers: dict[str, str]) -> ApiError:
    """The exception for an error answer: by `code`, else by status family."""
    data: dict[str, Any] = body if isinstance(body, dict) else {}
    code = data.get("code")
    detail = data.get("detail")
    code_text = code if isinstance(code, str) else ""
    detail_text = detail if isinstance(detail, str) else f"HTTP {status}"
    cls = ERRORS_BY_CODE.get(code_text) or _BY_STATUS.get(status)
    if cls is None:
        cls = RequestError if 400 <= status < 500 else ApiError
    return cls(status, code_text, detail_text, data, headers)
