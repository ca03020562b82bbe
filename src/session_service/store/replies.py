"""The reply of every Lua script, declared once, in Python.

Each shape is a NamedTuple whose fields, in order, are the reply array, slot 0 (the
tag) included; a script's codec names the shapes it may answer (protocol.py), and
reply_decoding.py turns a raw reply into one of them, strictly, in one place. The
slot kinds a field may have are listed there.

Named after what they mean to the store; the Lua that builds each is named in its
docstring. Shapes shared by several scripts are declared once.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from session_service.store.reply_decoding import Entry, Fields, Rest


class Done(NamedTuple):
    """{'ok'}: delete, watch."""

    tag: Literal["ok"]


class SessionFields(NamedTuple):
    """{'ok', the session hash after}: update, archive, restore."""

    tag: Literal["ok"]
    fields: Fields


class Restart(NamedTuple):
    """{'restart'}: the source was rewound, or the copy swept away: copy again."""

    tag: Literal["restart"]


class CreateDone(NamedTuple):
    """create.lua: a new session, or the live one with the caller's client_id."""

    tag: Literal["created", "resumed"]
    session_id: str
    fields: Fields
    pruned: int
    evicted: tuple[str, ...] = ()  # sessions evict_oldest dropped for it ('created' only)


class CreateAgain(NamedTuple):
    """create.lua: a bounded step of evicting or pruning done, nothing created: call again."""

    tag: Literal["again"]
    pruned: int
    evicted: tuple[str, ...]


class CreateReplay(NamedTuple):
    """create.lua: the Idempotency-Key's first create answered again."""

    tag: Literal["replay"]
    outcome: str  # 'created' or 'resumed', as the first answer said
    session_id: str
    fields: Fields


class AppendOk(NamedTuple):
    """append.lua: the message stored as `seq` at `ts`."""

    tag: Literal["ok"]
    seq: int
    ts: int
    messages: int  # the session holds now
    status: str
    etag: str  # of the messages


class AppendReplay(NamedTuple):
    """append.lua: the key's first append answered again (its entry is gone if a
    rewind of an earlier release removed it)."""

    tag: Literal["replay"]
    seq: int
    messages: int
    status: str
    entry: Entry | None
    etag: str


class BatchOk(NamedTuple):
    """append_batch.lua: the messages stored as seqs first..last, all at `ts`."""

    tag: Literal["ok"]
    first: int
    last: int
    ts: int
    messages: int  # the session holds now
    status: str
    etag: str


class BatchReplay(NamedTuple):
    """append_batch.lua: the key's first batch answered again (the entries still stored)."""

    tag: Literal["replay"]
    last: int
    messages: int
    status: str
    entries: tuple[Entry, ...]
    etag: str


class SummaryOk(NamedTuple):
    """summarize.lua: the summary stored as `seq`."""

    tag: Literal["ok"]
    seq: int
    created_ms: int
    etag: str  # of the messages


class SummaryReplay(NamedTuple):
    """summarize.lua: the key's first summary again (None if a rewind removed it)."""

    tag: Literal["replay"]
    entry: Entry | None
    etag: str


class Heartbeat(NamedTuple):
    """heartbeat.lua (an archived session's deadline stays as it was)."""

    tag: Literal["ok"]
    status: str
    last_activity_ms: int
    expires_ms: int  # 0: never
    etag: str


class ContextCleared(NamedTuple):
    """clear_context.lua."""

    tag: Literal["ok"]
    removed: tuple[str, ...]  # the context keys removed
    etag: str


class CaseLinked(NamedTuple):
    """link_case.lua."""

    tag: Literal["ok"]
    linked_ms: int


class CaseUnlinked(NamedTuple):
    """unlink_case.lua."""

    tag: Literal["ok"]
    removed: bool


class SessionRow(NamedTuple):
    """A session id and its hash ({} when it expired while read)."""

    session_id: str
    fields: Fields


class SessionPage(NamedTuple):
    """list.lua: total -1 when expired sessions are still indexed (call again)."""

    total: int
    pruned: int
    rows: Rest[SessionRow]


class StatusCount(NamedTuple):
    """statistics.lua, per status: how many, and the activity of the oldest and newest."""

    status: str
    sessions: int
    oldest: float | None
    newest: float | None


class Statistics(NamedTuple):
    """statistics.lua: `expired_left` > 0 means call again (pruning is bounded)."""

    pruned: int
    expired_left: int
    messages: int
    statuses: Rest[StatusCount]


class Pruned(NamedTuple):
    """prune.lua."""

    removed: int
    scanned: int
    more: bool


class DeleteAllSlice(NamedTuple):
    """delete_all.lua, one slice."""

    deleted: int  # live sessions
    expired: int  # pruned
    cursor: str
    cutoff: int
    done: bool


class EraseSlice(NamedTuple):
    """erase.lua, one slice."""

    cutoff: int
    cursor: str  # a ZSCAN cursor, or 'late'
    dropped: int
    live: int
    keys: int
    done: bool


class Window(NamedTuple):
    """window.lua: the latest summary and the messages that fit, oldest first."""

    tag: Literal["ok"]
    summary: Entry | None
    tokens: int
    truncated: bool
    messages: Rest[Entry]


class RoleCount(NamedTuple):
    """A copied slice's messages and counted tokens of one role (its first letter)."""

    role: str
    messages: int
    tokens: int


class MessagesCopied(NamedTuple):
    """copy.lua what='m'."""

    tag: Literal["messages"]
    last: int  # the last seq copied (the cursor)
    done: bool
    bytes: int
    first_ts: str  # '' when the slice copied nothing
    last_ts: str
    roles: Rest[RoleCount]


class SummariesCopied(NamedTuple):
    """copy.lua what='y'."""

    tag: Literal["summaries"]
    last: int
    done: bool
    bytes: int
    copied: int
    covers_through: str  # of the last one copied, '' when none
    tokens: str


class RecordsCopied(NamedTuple):
    """copy.lua what='i' or 'l' (a rewind's append idempotency records)."""

    tag: Literal["records"]
    last: int  # the last score copied
    done: bool
    bytes: int
    read: int


class ForkBegun(NamedTuple):
    """fork_begin.lua: copy through `through` under rewind `generation`."""

    tag: Literal["ok"]
    through: int
    generation: str


class ForkReplay(NamedTuple):
    """fork_begin.lua, fork.lua: the key's first fork, answered again."""

    tag: Literal["replay"]
    session_id: str
    fields: Fields


class Forked(NamedTuple):
    """fork.lua: the copy published as a session."""

    tag: Literal["created"]
    session_id: str
    fields: Fields
    pruned: int


class Rewound(NamedTuple):
    """rewind.lua, rewind_swap.lua."""

    tag: Literal["ok"]
    removed: int
    etag: str  # of the messages


class RewindStaged(NamedTuple):
    """rewind.lua: too long a tail for one script: copy the kept part, then swap."""

    tag: Literal["staged"]
    generation: str


class SwapBehind(NamedTuple):
    """rewind_swap.lua: more summaries to carry than one script does: copy those
    after seq `after`, then swap again."""

    tag: Literal["behind"]
    after: int


class Gone(NamedTuple):
    """{'gone'}: search.lua's snapshot, feed.lua's session, no longer exists."""

    tag: Literal["gone"]


class ScanStep(NamedTuple):
    """search.lua mode='scan': one slice added to the snapshot; done, or go on after
    the cursor."""

    tag: Literal["scan"]
    done: bool
    score: str
    session_id: str
    pruned: int


class SearchPage(NamedTuple):
    """search.lua mode='page': the matches after the cursor, and the cursor after them."""

    tag: Literal["page"]
    done: bool
    score: str
    session_id: str
    total: int
    rows: Rest[SessionRow]


class FeedRead(NamedTuple):
    """feed.lua: the session, the highest seq at or below the cursor, the entries after it."""

    fields: Fields
    kept: int
    entries: tuple[Entry, ...]
