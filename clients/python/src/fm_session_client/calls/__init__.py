"""Every endpoint as a `Call`: the request to send and how to read its answer.

Both clients run the same calls (one blocking, one awaiting), so their surfaces cannot
drift apart, and this package is the one place that knows paths, headers and bodies.
`OPERATIONS` names the client method for each operation of the service's OpenAPI
document; a test checks that it covers the document.
"""

from fm_session_client.calls.conversation import (
    append,
    append_batch,
    create_summary,
    export,
    export_markdown,
    fork,
    get_message,
    list_messages,
    list_summaries,
    rewind,
    stats,
    window,
)
from fm_session_client.calls.core import UNSET, Call, MessageInput, new_idempotency_key
from fm_session_client.calls.feed import poll_events
from fm_session_client.calls.operations import OPERATIONS
from fm_session_client.calls.sessions import (
    archive,
    cleanup,
    clear_context,
    create_session,
    delete_all_sessions,
    delete_session,
    erase_user,
    get_session,
    head_session,
    health,
    heartbeat,
    link_case,
    list_cases,
    list_sessions,
    metrics,
    ready,
    recovery_info,
    restore,
    search,
    service_info,
    statistics,
    unlink_case,
    update,
)

__all__ = [
    "OPERATIONS",
    "UNSET",
    "Call",
    "MessageInput",
    "append",
    "append_batch",
    "archive",
    "cleanup",
    "clear_context",
    "create_session",
    "create_summary",
    "delete_all_sessions",
    "delete_session",
    "erase_user",
    "export",
    "export_markdown",
    "fork",
    "get_message",
    "get_session",
    "head_session",
    "health",
    "heartbeat",
    "link_case",
    "list_cases",
    "list_messages",
    "list_sessions",
    "list_summaries",
    "metrics",
    "new_idempotency_key",
    "poll_events",
    "ready",
    "recovery_info",
    "restore",
    "rewind",
    "search",
    "service_info",
    "statistics",
    "stats",
    "unlink_case",
    "update",
    "window",
]
