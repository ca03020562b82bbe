"""What a history says, indexed for the checker's rules (`checker.py`, `batch_rules.py`,
`feed_rules.py`), and the helpers the rules share.

An outcome means what it means in Jepsen: an `info` operation may or may not have
happened, at any time after it started; a `fail` did not happen; an `ok` happened once,
between its start and its end.

A batch append is one operation that appends several messages. The rules that hold for
every appended message (stored once at its answered id, read after its acknowledgement,
ids never reused, counted) read them from `Facts.appends`, where a single append and each
message of a batch are one `Appended` each; only the batch's own rule (atomicity) looks
at the batch as a whole.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.model.final import FinalSession, FinalState
from tests.model.history import Op
from tests.model.workload import LONG_TIMEOUT_MINUTES, NO_MESSAGE, msg_seq

#: Operations that append messages: one (`append`) or several at once (`batch`).
APPENDS = ("append", "batch")


@dataclass(frozen=True)
class Violation:
    kind: str
    user: str
    subject: str
    text: str
    ops: tuple[int, ...] = ()
    sessions: tuple[str, ...] = ()  # where it shows: their histories are printed with it

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.user, self.subject)


@dataclass(frozen=True)
class Appended:
    """One message a possible append or batch sent: its content (a token unique to the
    run) and, when the operation was acknowledged, the id the answer gave it."""

    op: Op
    token: str
    mid: str | None
    position: int  # in its batch (0 for a single append)

    @property
    def sid(self) -> str:
        return self.op.sid or ""

    @property
    def seq(self) -> int:
        return msg_seq(self.mid) if self.mid else 0


def appended(op: Op) -> list[Appended]:
    """The messages an append or a batch sent, with their answered ids when it is ok."""
    if op.kind == "append":
        mid = op.body["message"]["message_id"] if op.ok else None
        return [Appended(op, op.args["body"]["content"], mid, 0)]
    if op.kind == "batch":
        sent = [m["content"] for m in op.args["body"]["messages"]]
        mids: list[str | None] = [None] * len(sent)
        if op.ok:
            mids = [m["message_id"] for m in op.body["messages"]]
        return [Appended(op, t, m, i) for i, (t, m) in enumerate(zip(sent, mids, strict=True))]
    return []


@dataclass
class Facts:
    """What the history says, indexed for the rules."""

    history: list[Op]
    created: dict[str, Op] = field(default_factory=dict)  # sid -> the first ok create/fork
    short: dict[str, bool] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)  # fork -> source
    by_sid: dict[str, list[Op]] = field(default_factory=lambda: defaultdict(list))
    by_user: dict[str, list[Op]] = field(default_factory=lambda: defaultdict(list))
    sent: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # sid -> tokens
    acked_at: dict[str, float] = field(default_factory=dict)  # token -> first ok append's end
    client_ids: dict[str, str] = field(default_factory=dict)  # sid -> its client_id
    index: dict[int, Op] = field(default_factory=dict)
    #: sid -> every message a possible append or batch to it sent, in history order.
    appends: dict[str, list[Appended]] = field(default_factory=lambda: defaultdict(list))


def facts_of(history: list[Op], final: FinalState | None = None) -> Facts:
    facts = Facts(history, index={op.index: op for op in history})
    for op in history:
        facts.by_user[op.user].append(op)
        if op.sid:
            facts.by_sid[op.sid].append(op)
        if op.kind in ("create", "fork") and op.ok and isinstance(op.body, dict):
            _learn_session(facts, op)
        if op.kind in APPENDS and op.possible and op.sid:
            for a in appended(op):
                facts.appends[op.sid].append(a)
                facts.sent[op.sid].add(a.token)
                if op.ok:
                    facts.acked_at[a.token] = min(facts.acked_at.get(a.token, op.end), op.end)
    for sessions in final.sessions.values() if final is not None else ():
        for sid, fs in sessions.items():
            forked = fs.body.get("forked_from")
            if forked:
                facts.parent.setdefault(sid, forked["session_id"])
            if fs.body.get("timeout_minutes") != LONG_TIMEOUT_MINUTES:
                facts.short.setdefault(sid, True)
    return facts


def _learn_session(facts: Facts, op: Op) -> None:
    """A create or fork answered with a session: who owns it, where it came from, and
    whether it may expire during the run (created without a long timeout)."""
    sid = op.body["session_id"]
    first = facts.created.get(sid)
    if first is None or op.end < first.end:
        facts.created[sid] = op
    facts.owner[sid] = op.user
    if op.body.get("client_id"):
        facts.client_ids[sid] = op.body["client_id"]
    # The answer's own timeout: a resume by client_id answers the session it found.
    facts.short.setdefault(sid, op.body.get("timeout_minutes") != LONG_TIMEOUT_MINUTES)
    if op.kind == "fork":
        facts.parent[sid] = op.sid or ""


# ---- helpers the rules share ---------------------------------------------------------


def session_removals(facts: Facts, sid: str, user: str) -> Iterable[Op]:
    """Possible operations that may have removed the session: delete, delete-all, erase."""
    for op in facts.by_sid.get(sid, []):
        if op.kind == "delete" and op.possible:
            yield op
    for op in facts.by_user.get(user, []):
        if op.kind in ("delete_all", "erase") and op.possible:
            yield op


def rewind_to(op: Op) -> int:
    """The seq a rewind keeps up to (0: it keeps nothing)."""
    to = op.args["body"]["to_message_id"]
    return 0 if to == NO_MESSAGE else msg_seq(to)


def rewinds_removing(facts: Facts, sid: str, seq: int, after: float) -> list[Op]:
    """Possible rewinds of `sid` that could have run after `after` and removed `seq`."""
    return [
        op
        for op in facts.by_sid.get(sid, [])
        if op.kind == "rewind" and op.possible and op.end > after and rewind_to(op) < seq
    ]


def final_of(final: FinalState, user: str, sid: str) -> FinalSession | None:
    return final.sessions.get(user, {}).get(sid)


def lineage(facts: Facts, sid: str) -> list[str]:
    """The session, then the source it was forked from, and that one's source, ..."""
    out: list[str] = []
    current: str | None = sid
    while current and current not in out:
        out.append(current)
        current = facts.parent.get(current)
    return out


def lineage_tokens(facts: Facts, sid: str) -> set[str]:
    """Every content a possible append or batch sent to the session or its sources."""
    tokens: set[str] = set()
    for each in lineage(facts, sid):
        tokens |= facts.sent.get(each, set())
    return tokens


def message_views(op: Op) -> list[dict[str, Any]]:
    """The messages an acknowledged read shows: a whole read's page, or a feed poll's
    `message` events (each event's data is the stored message)."""
    if not op.ok or not isinstance(op.body, dict):
        return []
    if op.kind == "messages":
        return list(op.body.get("messages", []))
    if op.kind == "feed":
        return [e["data"] for e in op.body.get("events", []) if e.get("event") == "message"]
    return []


def feed_cursor(op: Op) -> int | None:
    """The seq a feed poll resumed after (its Last-Event-ID); None: it started from now."""
    cursor = op.args.get("headers", {}).get("Last-Event-ID")
    return None if cursor is None else msg_seq(cursor)
