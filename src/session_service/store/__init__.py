"""Storage: keys, Lua scripts, connections and the SessionStore.

The names below are the store's public interface: the API imports nothing else
from `store/`. They speak domain values; how they reach Redis (key names, script
arguments, stored encodings, fingerprints) stays inside.
"""

from session_service.store.confirmation import Ticket, begin_ticket
from session_service.store.errors import translate
from session_service.store.feed import FeedHub
from session_service.store.records import (
    UNSET,
    Appended,
    AppendedBatch,
    CreateResult,
    Limits,
    NewMessage,
    NewSession,
    SearchFilters,
    Tagged,
    Unset,
)
from session_service.store.sessions import SessionStore
from session_service.store.watch import Watcher

__all__ = [
    "UNSET",
    "Appended",
    "AppendedBatch",
    "CreateResult",
    "FeedHub",
    "Limits",
    "NewMessage",
    "NewSession",
    "SearchFilters",
    "SessionStore",
    "Tagged",
    "Ticket",
    "Unset",
    "Watcher",
    "begin_ticket",
    "translate",
]
