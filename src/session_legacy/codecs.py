"""The arguments of the import's two scripts (lua/), registered with the store's scripts.

Declaring them registers them (`session_service.store.protocol`); the store runs them
like its own, with the same prelude and lib.lua, but they live here, with the import.
"""

from __future__ import annotations

from dataclasses import dataclass

from session_service.store.protocol import Pairs, ScriptArgs

PACKAGE = "session_legacy"


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportStageArgs(ScriptArgs):
    script = "import_stage"
    lua_package = PACKAGE
    sid: str
    first_seq: int
    staging_ttl_ms: int
    messages: tuple[str, ...]  # role, content, timestamp_ms, metadata JSON|'', tokens per message


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportCommitArgs(ScriptArgs):
    script = "import_commit"
    lua_package = PACKAGE
    sid: str
    status: str
    last_activity_ms: int
    remaining_ttl_ms: int  # -1: kept forever
    client_id: str
    message_count: int
    max_sessions: int
    fields: Pairs  # the stored record, without its deadline
