"""The session store: every Redis call the service makes goes through it.

`SessionStore` is assembled from one part per concern, each a module of its own
over `StoreBase` (base.py): lifecycle, messages, search, cases, account (everything
a user holds), agents (prompt window, summaries) and maintenance.
"""

from __future__ import annotations

from session_service.observability.metrics import instrument_store
from session_service.store.account import AccountOps
from session_service.store.agents import AgentStore
from session_service.store.base import StoreBase
from session_service.store.branches import BranchOps
from session_service.store.cases import CaseOps
from session_service.store.feed_reads import FeedOps
from session_service.store.lifecycle import SessionOps
from session_service.store.maintenance import MaintenanceOps
from session_service.store.messages import EXPORT_CHUNK, MessageOps
from session_service.store.records import (
    UNSET,
    Appended,
    CreateResult,
    Limits,
    NewSession,
    SearchFilters,
    Tagged,
    Unset,
    canonical_pairs,
)
from session_service.store.retries import retry_reads
from session_service.store.search import SearchOps

__all__ = [
    "EXPORT_CHUNK",
    "UNSET",
    "Appended",
    "CreateResult",
    "Limits",
    "NewSession",
    "SearchFilters",
    "SessionStore",
    "StoreBase",
    "Tagged",
    "Unset",
    "canonical_pairs",
]


@instrument_store
@retry_reads(
    "get",
    "get_with_messages",
    "exists",
    "messages_page",
    "message",
    "stats",
    "linked_cases",
    "user_keys",
    "ping",
    "eviction_policy",
    "window",
    "summaries_page",
)
class SessionStore(
    SessionOps,
    MessageOps,
    SearchOps,
    CaseOps,
    AccountOps,
    AgentStore,
    MaintenanceOps,
    BranchOps,
    FeedOps,
):
    """Every operation of the store; the API only ever sees this class."""
