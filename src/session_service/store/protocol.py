"""The argument protocol of every Lua script, defined once, in Python.

Each script takes one small frozen, keyword-only dataclass. Its fields, in order, ARE the
script's ARGV layout: `argv()` flattens an instance for EVALSHA, and
`lua_binding()` generates the Lua lines, prepended to the script, that read ARGV
back into the table `A` under the same names. Scripts read `A.<field>`, never
`ARGV[n]`, so no position is ever written by hand on either side.
tests/store/test_script_contract.py checks, for every script, that the fields the
Lua reads are exactly the codec's and that values arrive intact.

Declaring a codec registers its script: a new script is its `lua/<name>.lua` file and
one `ScriptArgs` subclass naming it, nothing else (`CODECS`, `scripts.Scripts`). The
codec also names the shapes the script answers, `ScriptArgs[AppendOk | AppendReplay]`
(replies.py), so `args.decode(raw)` gives the reply as named fields: one declaration
holds both directions of the call.

Field types and how they travel:

    str                      one argument                      A.x a string
    int                      one argument                      A.x a number
    int | None               one argument, '' for None         A.x a number or nil
    bool                     '1' or '0'                        A.x a boolean
    tuple[str, ...]          a count, then the items           A.x a list
    tuple[tuple[str, str], ...]  a count, then key, value...   A.x a flat list k1, v1, k2, v2
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args, get_origin, get_type_hints

from session_service.store.replies import (
    AppendOk,
    AppendReplay,
    BatchOk,
    BatchReplay,
    CaseLinked,
    CaseUnlinked,
    ContextCleared,
    CreateAgain,
    CreateDone,
    CreateReplay,
    DeleteAllSlice,
    Done,
    EraseSlice,
    FeedRead,
    ForkBegun,
    Forked,
    ForkReplay,
    Gone,
    Heartbeat,
    MessagesCopied,
    Pruned,
    RecordsCopied,
    Restart,
    RewindStaged,
    Rewound,
    ScanStep,
    SearchPage,
    SessionFields,
    SessionPage,
    Statistics,
    SummariesCopied,
    SummaryOk,
    SummaryReplay,
    SwapBehind,
    Window,
)
from session_service.store.reply_decoding import Replies

#: The reply shapes a codec declares (replies.py), as one type or a union.
R = TypeVar("R")

Pairs = tuple[tuple[str, str], ...]

_KINDS: dict[Any, str] = {
    str: "str",
    int: "int",
    int | None: "int?",
    bool: "bool",
    tuple[str, ...]: "list",
    Pairs: "pairs",
}


#: Every script's codec, by script name, filled as the codecs below are declared.
CODECS: dict[str, type[ScriptArgs[Any]]] = {}
#: Every script's reply decoder, by script name, built from its codec's declaration.
REPLIES: dict[str, Replies[Any]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptArgs(Generic[R]):
    """One script's arguments; subclasses name the script, its replies and the fields."""

    script: ClassVar[str]
    #: The package whose `lua/` folder holds the script (lib.lua is always the store's).
    lua_package: ClassVar[str] = "session_service.store"

    def __init_subclass__(cls) -> None:
        """Register the codec and its replies under its script's name (one declaration
        per script).

        Generic's hook is called by name: slots=True rebuilds this class, which breaks
        the zero-argument `super()`."""
        super(ScriptArgs, cls).__init_subclass__()
        name = cls.__dict__.get("script")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__name__} must name its script: script = '<name>'")
        declared = [
            get_args(base)[0]
            for base in cls.__dict__.get("__orig_bases__", ())
            if get_origin(base) is ScriptArgs
        ]
        if not declared:
            raise TypeError(f"{cls.__name__} must declare its replies: ScriptArgs[<shapes>]")
        known = CODECS.get(name)
        # dataclass(slots=True) builds a second class of the same name: it replaces the first.
        if known is not None and (known.__module__, known.__name__) != (
            cls.__module__,
            cls.__name__,
        ):
            raise TypeError(f"{cls.__name__} and {known.__name__} both claim {name}.lua")
        CODECS[name] = cls
        REPLIES[name] = Replies(name, declared[0])

    def decode(self, raw: object, target_status: str | None = None) -> R:
        """The script's raw reply to this call as its declared shape (reply_decoding.py); a
        refusal raises the service error it stands for (`target_status`: update's)."""
        return cast(R, REPLIES[self.script](raw, target_status))

    @classmethod
    def layout(cls) -> list[tuple[str, str]]:
        """(field, kind) in ARGV order."""
        return _layout(cls)

    def argv(self) -> list[str | int]:
        out: list[str | int] = []
        for name, kind in self.layout():
            value = getattr(self, name)
            if kind == "int?":
                out.append("" if value is None else value)
            elif kind == "bool":
                out.append("1" if value else "0")
            elif kind == "list":
                out += [len(value), *value]
            elif kind == "pairs":
                out += [len(value), *(part for pair in value for part in pair)]
            else:
                out.append(value)
        return out


_LAYOUTS: dict[Any, list[tuple[str, str]]] = {}


def _layout(cls: type[ScriptArgs[Any]]) -> list[tuple[str, str]]:
    known = _LAYOUTS.get(cls)
    if known is not None:
        return known
    hints = get_type_hints(cls)
    layout = []
    for field in dataclasses.fields(cls):
        if not field.kw_only:
            # A positional codec lets two str arguments be swapped unnoticed.
            raise TypeError(f"{cls.__name__}: declare it with @dataclass(..., kw_only=True)")
        kind = _KINDS.get(hints[field.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{field.name}: no ARGV encoding for its type")
        layout.append((field.name, kind))
    _LAYOUTS[cls] = layout
    return layout


def lua_binding(cls: type[ScriptArgs[Any]]) -> str:
    """The Lua that reads ARGV into `A`, and refuses a call with a different arity."""
    lines = [
        "local A, _i = {}, 0",
        "local function _arg() _i = _i + 1; return ARGV[_i] end",
    ]
    for name, kind in cls.layout():
        if kind == "str":
            lines.append(f"A.{name} = _arg()")
        elif kind in ("int", "int?"):
            lines.append(f"A.{name} = tonumber(_arg())")
        elif kind == "bool":
            lines.append(f"A.{name} = _arg() == '1'")
        else:
            per = 2 if kind == "pairs" else 1
            lines.append(
                f"A.{name} = {{}}; for _ = 1, tonumber(_arg()) * {per} do "
                f"A.{name}[#A.{name} + 1] = _arg() end"
            )
    lines.append(
        f"if _i ~= #ARGV then return redis.error_reply('{cls.script}: ARGV has ' "
        "..  #ARGV .. ' arguments, the protocol ' .. _i) end"
    )
    return "\n".join(lines) + "\n"


# ---- one codec per script --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateArgs(ScriptArgs[CreateDone | CreateAgain | CreateReplay]):
    script = "create"
    sid: str
    timeout_ms: int
    client_id: str  # '' for none
    idem: str  # digest of the idempotency key, '' for none
    fingerprint: str  # of the request the key answers
    idem_ttl_ms: int
    max_sessions: int
    evict_oldest: bool  # at the limit, evict the least recently active instead of refusing
    fields: Pairs  # stored field, value


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateArgs(ScriptArgs[SessionFields]):
    script = "update"
    sid: str
    title_op: str  # '0' untouched, '1' set, '2' clear
    title: str
    title_folded: str
    desc_op: str
    desc: str
    desc_folded: str
    status: str  # the target status, '' for none
    allowed_from: str  # statuses the target may be reached from, comma-separated
    archived_ttl_ms: int
    max_keys: int
    max_bytes: int
    metadata: Pairs  # key, canonical JSON ('' removes the key)
    context: Pairs
    timeout_ms: int | None
    if_match: str  # the session ETag the caller has, '' for none


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendArgs(ScriptArgs[AppendOk | AppendReplay]):
    script = "append"
    sid: str
    role: str
    content: str
    metadata: str  # canonical JSON, '' for none
    title: str  # the title an untitled session takes from its first user message
    title_folded: str
    idem: str  # digest of the idempotency key, '' for none
    fingerprint: str  # of the message the key answers
    max_messages: int
    idem_ttl_ms: int
    if_match: str  # the messages ETag the caller has, '' for none
    tokens: int
    estimated: bool  # the token count is the service's estimate
    tool_calls: str  # canonical JSON, '' for none
    tool_call_id: str  # the call a tool result answers, '' for none
    call_ids: tuple[str, ...]  # the ids of tool_calls


#: What append_batch.lua reads of each message, in order (AppendBatchArgs.messages).
BATCH_MESSAGE_FIELDS = (
    "role",
    "content",
    "metadata",
    "tokens",
    "estimated",
    "tool_calls",
    "tool_call_id",
    "calls",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendBatchArgs(ScriptArgs[BatchOk | BatchReplay]):
    script = "append_batch"
    sid: str
    title: str  # from the batch's first user message (an untitled session with none takes it)
    title_folded: str
    idem: str  # digest of the idempotency key, '' for none
    fingerprint: str  # of the whole batch
    max_messages: int
    idem_ttl_ms: int
    if_match: str  # the messages ETag the caller has, '' for none
    # Per message, BATCH_MESSAGE_FIELDS: metadata and tool_calls canonical JSON or '',
    # estimated '1' or '0', tool_call_id or '', calls the number of its call ids.
    messages: tuple[str, ...]
    call_ids: tuple[str, ...]  # every message's tool call ids, in order


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchArgs(ScriptArgs[ScanStep | SearchPage | Gone]):
    script = "search"
    mode: str  # 'scan' (add matches to the walk's snapshot) or 'page' (read it)
    walk: str  # the snapshot's id
    budget: int  # index rows a call reads at most
    want: int  # sessions a page call returns at most
    cursor_score: str  # the exclusive cursor: activity as Redis spells it, '' at the start
    cursor_sid: str
    ttl_ms: int  # a snapshot lives this long after its last call
    max_walks: int  # snapshots a user keeps; a new walk drops the oldest
    statuses: tuple[str, ...]
    query: str  # folded, '' for none
    session_type: str  # '' for any
    created_after: int | None
    created_before: int | None
    updated_after: int | None
    updated_before: int | None
    metadata: Pairs  # stored field (m:<key>), canonical JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class SummarizeArgs(ScriptArgs[SummaryOk | SummaryReplay]):
    script = "summarize"
    sid: str
    content: str
    tokens: int
    estimated: bool  # the token count is the service's estimate
    covers_through: int  # the message seq the summary stands in for, and all before it
    metadata: str  # canonical JSON, '' for none
    max_messages: int
    idem: str  # digest of the idempotency key (scoped to the session), '' for none
    fingerprint: str
    idem_ttl_ms: int
    if_match: str  # the messages ETag the caller has, '' for none


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatArgs(ScriptArgs[Heartbeat]):
    script = "heartbeat"
    sid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveArgs(ScriptArgs[SessionFields]):
    script = "archive"
    sid: str
    archived_ttl_ms: int
    if_match: str  # the session ETag the caller has, '' for none


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreArgs(ScriptArgs[SessionFields]):
    script = "restore"
    sid: str
    if_match: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteArgs(ScriptArgs[Done]):
    script = "delete"
    sid: str
    if_match: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClearContextArgs(ScriptArgs[ContextCleared]):
    script = "clear_context"
    sid: str
    if_match: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkCaseArgs(ScriptArgs[CaseLinked]):
    script = "link_case"
    sid: str
    case_id: str
    max_cases: int  # MAX_CASES_PER_SESSION


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlinkCaseArgs(ScriptArgs[CaseUnlinked]):
    script = "unlink_case"
    sid: str
    case_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListArgs(ScriptArgs[SessionPage]):
    script = "list"
    offset: int
    limit: int
    statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteAllArgs(ScriptArgs[DeleteAllSlice]):
    script = "delete_all"
    slice: int
    cutoff: int | None  # ms: sessions created after it are left; None: now (the first slice)
    cursor: str  # ZSCAN cursor over the expiry index, '0' at the start


@dataclass(frozen=True, slots=True, kw_only=True)
class EraseArgs(ScriptArgs[EraseSlice]):
    script = "erase"
    slice: int
    run: str  # this erase's id among the user's erases in progress
    cutoff: int | None  # ms: sessions created after it are left; None: now (the first slice)
    cursor: str  # ZSCAN cursor over the expiry index, '0' at the start, 'late' after it
    mark_ttl_ms: int  # the record of erases in progress outlives a stopped erase this long


@dataclass(frozen=True, slots=True, kw_only=True)
class EraseStraysArgs(ScriptArgs[int]):
    script = "erase_strays"
    suffixes: tuple[str, ...]  # keys relative to the user's base
    cutoff: int  # the erase's: a copy in progress is kept only for a session created after it


@dataclass(frozen=True, slots=True, kw_only=True)
class PruneArgs(ScriptArgs[Pruned]):
    script = "prune"


@dataclass(frozen=True, slots=True, kw_only=True)
class StatisticsArgs(ScriptArgs[Statistics]):
    script = "statistics"


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowArgs(ScriptArgs[Window]):
    script = "window"
    sid: str
    max_tokens: int
    max_messages: int
    largest_chunk: int
    max_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CopyArgs(ScriptArgs[MessagesCopied | SummariesCopied | RecordsCopied | Restart]):
    script = "copy"
    src: str
    dst: str  # an id with no session record: the fork's, or a rewind's staging id
    what: str  # 'm' the messages, 'y' the summaries; a rewind's 'i', 'l' append records
    through: int  # the last message seq copied
    after: int  # exclusive cursor: the last seq copied so far (0 at the start)
    count: int  # at most this many entries
    generation: str  # the source's rewind generation when the copy began
    ttl_ms: int  # the copy's keys expire after this, unless made visible


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkBeginArgs(ScriptArgs[ForkBegun | ForkReplay]):
    script = "fork_begin"
    src: str
    through: int | None  # None: the source's last message
    idem: str  # digest of the Idempotency-Key, '' for none
    fingerprint: str
    max_sessions: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkArgs(ScriptArgs[Forked | ForkReplay | Restart]):
    script = "fork"
    src: str
    dst: str
    through: int
    generation: str
    idem: str
    fingerprint: str
    idem_ttl_ms: int
    max_sessions: int
    title_given: bool
    title: str
    title_folded: str
    counters: Pairs  # the copied part's: mc, nu.., tk, ku.., fm, lm, sn, sy, sw, sk, sq


@dataclass(frozen=True, slots=True, kw_only=True)
class RewindArgs(ScriptArgs[Rewound | RewindStaged]):
    script = "rewind"
    sid: str
    to: int  # the last message seq kept (0: none)
    if_match: str  # the messages ETag the caller has, '' for none
    max_inline: int  # a longer tail answers 'staged'


@dataclass(frozen=True, slots=True, kw_only=True)
class RewindSwapArgs(ScriptArgs[Rewound | SwapBehind | Restart]):
    script = "rewind_swap"
    sid: str
    staging: str
    if_match: str
    generation: str
    to: int  # the last message seq kept: summaries covering at most it survive
    counters: Pairs  # the kept part's, as for ForkArgs


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedArgs(ScriptArgs[FeedRead | Gone]):
    script = "feed"
    sid: str
    after: int  # the watcher's cursor (message seq), 0 for none
    limit: int  # messages to read after it; 0: none, only the rewind check


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchArgs(ScriptArgs[Done]):
    script = "watch"
    op: str  # 'open', 'renew' or 'close'
    lease_ms: int
    max_watchers: int  # MAX_WATCHERS_PER_USER
    ids: tuple[str, ...]
