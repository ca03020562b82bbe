"""The batch append's own rule: all or nothing, in one run of consecutive ids.

Every message of a batch also obeys the rules of a single append (stored once at its
answered id, read after its acknowledgement, ids never reused, counted): `facts.py`
gives the checker each message of a batch as one appended message. What only a batch
promises (docs/batch-append.md) is checked here:

- an acknowledged batch's answer gives its messages consecutive ids, in the batch's
  order (`batch-ids-not-contiguous`), and one timestamp (`batch-timestamps-differ`,
  also checked wherever the batch shows);
- wherever a batch shows (the final state, a whole read of the messages, a feed poll),
  whether it was acknowledged, failed or its answer was lost, its messages show as one
  run of consecutive ids in the batch's order (`batch-not-contiguous`), and either all of
  them or none (`batch-partial`). Only a cut that something explains is allowed: a
  rewind or a fork that names the last message shown (they keep a prefix), a feed poll
  whose cursor sits inside the batch (it shows what follows the cursor), or a feed page
  that is full (the rest comes in the next poll).

And the rule of one Idempotency-Key, for batches and single appends alike (docs/
batch-append.md, docs/idempotency.md): a replay of an acknowledged keyed write answers
the same messages as the first answer and stores nothing, even when the If-Match it
carries no longer holds (`replay-differs`, `replay-refused`). Only a rewind that could
have run between the two changes that: one that removed the whole write forgets its key
(the replay is a new write: stored anew, or refused as any write may be, a stale
If-Match included), one that removed part of a batch spends it (422
`idempotency_key_reused`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from session_service.store.watch import PAGE
from tests.model.facts import (
    APPENDS,
    Appended,
    Facts,
    Violation,
    feed_cursor,
    lineage,
    message_views,
    rewind_to,
)
from tests.model.final import FinalState
from tests.model.history import Op
from tests.model.workload import msg_seq


@dataclass(frozen=True)
class View:
    """Messages as one observation showed them, oldest first."""

    sid: str
    user: str
    messages: list[dict[str, Any]]
    after: int  # the view shows only messages above this seq (a feed poll's cursor)
    full: bool  # a page that may have cut what follows its last message
    end: float  # when it was read at the latest
    index: int  # the operation (-1: the final state)

    @property
    def where(self) -> str:
        return f"read #{self.index}" if self.index >= 0 else "the final state"


def batches_atomic(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A batch is stored whole or not at all, at consecutive ids, in its order."""
    for sid, sent in facts.appends.items():
        for members in _batches(sent).values():
            op = members[0].op
            seqs = [a.seq for a in members]
            if op.ok and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
                yield Violation(
                    "batch-ids-not-contiguous", op.user, f"{sid}/{members[0].token}",
                    f"batch #{op.index} was answered with ids {[a.mid for a in members]}",
                    (op.index,),
                )  # fmt: skip
            stamps = {m.get("timestamp") for m in op.body["messages"]} if op.ok else set()
            if len(stamps) > 1:
                yield Violation(
                    "batch-timestamps-differ", op.user, f"{sid}/{members[0].token}",
                    f"batch #{op.index} was answered with timestamps {sorted(map(str, stamps))}",
                    (op.index,),
                )  # fmt: skip
    for view in _views(facts, final):
        yield from _check_view(facts, view)


def _batches(sent: list[Appended]) -> dict[int, list[Appended]]:
    """Op index -> the messages of that batch operation."""
    out: dict[int, list[Appended]] = {}
    for a in sent:
        if a.op.kind == "batch":
            out.setdefault(a.op.index, []).append(a)
    return out


def _views(facts: Facts, final: FinalState) -> Iterable[View]:
    for user, sessions in final.sessions.items():
        for sid, fs in sessions.items():
            yield View(sid, user, fs.messages, 0, False, float("inf"), -1)
    for op in facts.history:
        if op.sid is None or not op.ok:
            continue
        if op.kind == "messages" and not op.body.get("has_more"):
            yield View(op.sid, op.user, message_views(op), 0, False, op.end, op.index)
        elif op.kind == "feed":
            shown = message_views(op)
            after = feed_cursor(op)
            if shown and after is not None:
                yield View(op.sid, op.user, shown, after, len(shown) >= PAGE, op.end, op.index)


def _check_view(facts: Facts, view: View) -> Iterable[Violation]:
    # Which batch (and which position in it) each content belongs to. A keyed retry
    # sends the same batch again: its messages are the same contents.
    where: dict[str, tuple[str, int, int]] = {}
    for sid in lineage(facts, view.sid):
        for a in facts.appends.get(sid, []):
            if a.op.kind == "batch":
                size = len(a.op.args["body"]["messages"])
                first = a.op.args["body"]["messages"][0]["content"]
                where.setdefault(a.token, (first, a.position, size))
    shown: dict[str, list[tuple[int, int]]] = {}  # batch -> (position, seq), as shown
    size_of: dict[str, int] = {}
    for m in view.messages:
        found = where.get(m["content"])
        if found is not None:
            shown.setdefault(found[0], []).append((found[1], msg_seq(m["message_id"])))
            size_of[found[0]] = found[2]
    last_seq = msg_seq(view.messages[-1]["message_id"]) if view.messages else 0
    for first, members in shown.items():
        subject = f"{view.sid}/{first}"
        positions = [p for p, _ in members]
        seqs = [s for _, s in members]
        lo, hi = positions[0], positions[-1]
        if positions != list(range(lo, lo + len(positions))) or seqs != list(
            range(seqs[0], seqs[0] + len(seqs))
        ):
            yield Violation(
                "batch-not-contiguous", view.user, subject,
                f"{view.where} shows batch {first}'s messages {positions} at ids {seqs}",
                _ops(view), (view.sid,),
            )  # fmt: skip
            continue
        head_cut = lo > 0 and seqs[0] - 1 > view.after
        tail_cut = hi < size_of[first] - 1 and not (view.full and seqs[-1] == last_seq)
        if tail_cut and _cut_at(facts, view, seqs[-1]):
            tail_cut = False
        stamps = {m.get("timestamp") for m in view.messages if m["content"] in where
                  and where[m["content"]][0] == first}  # fmt: skip
        if len(stamps) > 1:
            yield Violation(
                "batch-timestamps-differ", view.user, subject,
                f"{view.where} shows batch {first}'s messages with timestamps "
                f"{sorted(map(str, stamps))}",
                _ops(view), (view.sid,),
            )  # fmt: skip
        if head_cut or tail_cut:
            yield Violation(
                "batch-partial", view.user, subject,
                f"{view.where} shows messages {positions} of the {size_of[first]} of batch "
                f"{first} (ids {seqs}), and no rewind or fork cut it there",
                _ops(view), (view.sid,),
            )  # fmt: skip


def _cut_at(facts: Facts, view: View, seq: int) -> bool:
    """A possible rewind (to `seq`) or fork (through `seq`) of the session or of a
    source it was forked from, started before the view was read: it keeps a prefix."""
    for sid in lineage(facts, view.sid):
        for op in facts.by_sid.get(sid, []):
            if not op.possible or op.start >= view.end:
                continue
            body = op.args.get("body") or {}
            named = body.get("to_message_id") if op.kind == "rewind" else None
            if op.kind == "fork":
                named = body.get("through_message_id")
            if named and msg_seq(named) == seq:
                return True
    return False


def _ops(view: View) -> tuple[int, ...]:
    return (view.index,) if view.index >= 0 else ()


def replays_answer_alike(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A replay of an acknowledged keyed append or batch answers what the first did."""
    for op in facts.history:
        first = facts.index.get(op.args.get("replay_of", -1))
        if op.kind not in APPENDS or first is None or not first.ok or op.outcome == "info":
            continue
        was, now = _answered(first), _answered(op) if op.ok else []
        top = max(_seq(m) for m in was)
        rewound = any(
            r.kind == "rewind" and r.possible and r.start < op.end and r.end > first.start
            and rewind_to(r) < top
            for r in facts.by_sid.get(op.sid or "", [])
        )  # fmt: skip
        if op.ok and now != was and not rewound:
            yield Violation(
                "replay-differs", op.user, f"{op.sid}/{first.index}",
                f"replay #{op.index} of {op.kind} #{first.index} answered "
                f"{[m['message_id'] for m in now]}, not the first answer "
                f"{[m['message_id'] for m in was]} (or not the same messages)",
                (first.index, op.index),
            )  # fmt: skip
        # A rewind that removed all of it forgot the key: the replay is a new write, which
        # may be refused as any write may (a stale If-Match, an archived session); one
        # that removed part of a batch spent the key (422).
        code = op.code()
        if op.outcome == "fail" and code != "session_not_found" and not rewound:
            yield Violation(
                "replay-refused", op.user, f"{op.sid}/{first.index}",
                f"replay #{op.index} of the acknowledged {op.kind} #{first.index} answered "
                f"{op.status} {code}",
                (first.index, op.index),
            )  # fmt: skip


def _answered(op: Op) -> list[dict[str, Any]]:
    body = op.body
    return list(body["messages"]) if op.kind == "batch" else [body["message"]]


def _seq(message: dict[str, Any]) -> int:
    return msg_seq(message["message_id"])
