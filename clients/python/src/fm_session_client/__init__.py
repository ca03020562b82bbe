"""Python client of the FaultMaven session service.

`SessionClient` (blocking) and `AsyncSessionClient` (asyncio) have the same methods: the
blocking modules are written from the asyncio ones by clients/python/unasync.py.
Writes are exactly-once: creates, appends, batches, summaries and forks carry an
Idempotency-Key and are retried with it after a transient failure, within a deadline.
Errors are exceptions chosen by the service's error `code` (see `errors`).
`watch()` follows a session's change feed as typed events (see `feed`).
Session stores for agent frameworks are in `fm_session_client.adapters` (extras).
"""

from fm_session_client import errors, feed, models
from fm_session_client.aio import AsyncSessionClient
from fm_session_client.calls import UNSET, new_idempotency_key
from fm_session_client.client import SessionClient
from fm_session_client.errors import (
    ApiError,
    IdempotencyKeyReused,
    PreconditionFailed,
    SessionNotFound,
    SessionServiceError,
    StorageUnavailable,
    TransportError,
)
from fm_session_client.models import MessageCreate, ToolCall
from fm_session_client.retry import RetryPolicy

__all__ = [
    "UNSET",
    "ApiError",
    "AsyncSessionClient",
    "IdempotencyKeyReused",
    "MessageCreate",
    "PreconditionFailed",
    "RetryPolicy",
    "SessionClient",
    "SessionNotFound",
    "SessionServiceError",
    "StorageUnavailable",
    "ToolCall",
    "TransportError",
    "errors",
    "feed",
    "models",
    "new_idempotency_key",
]
