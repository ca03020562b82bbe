"""The arguments and replies of the import's two scripts (lua/), registered with the
store's scripts.

Declaring them registers them (`session_service.store.protocol`); the store runs them
like its own, with the same prelude and lib.lua, and decodes their replies like its
own (`session_service.store.replies`), but they live here, with the import. Both take
their refusals as values (`Refusal`): the import reports them in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from session_service.store.protocol import Pairs, ScriptArgs
from session_service.store.reply_decoding import Refusal

PACKAGE = "session_legacy"


class Staged(NamedTuple):
    """import_stage.lua: the messages are staged through seq `last`."""

    tag: Literal["ok"]
    last: int


class AlreadyThere(NamedTuple):
    """import_stage.lua: the session was imported already, or one has its id."""

    tag: Literal["exists"]


class Imported(NamedTuple):
    """import_commit.lua: the session is visible."""

    tag: Literal["imported"]
    session_id: str
    pruned: int


class Skipped(NamedTuple):
    """import_commit.lua: not imported, and why (nothing was written but a prune)."""

    tag: Literal["skip"]
    reason: str
    pruned: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportStageArgs(ScriptArgs[Staged | AlreadyThere | Refusal]):
    script = "import_stage"
    lua_package = PACKAGE
    sid: str
    first_seq: int
    staging_ttl_ms: int
    messages: tuple[str, ...]  # role, content, timestamp_ms, metadata JSON|'', tokens per message


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportCommitArgs(ScriptArgs[Imported | Skipped | Refusal]):
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
