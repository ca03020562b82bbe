"""The reference model of the contract, checked against a history and the final state.

The checker never linearizes the whole history (too costly and too strict for a
service whose writes may be cut short by faults); it checks each rule of the contract
with the intervals of the operations that could explain an observation:

- an operation whose answer is unknown (`info`) may or may not have happened, and may
  have taken effect at any time after it started;
- an operation that answered 4xx (`fail`) did not happen;
- an operation that answered 2xx (`ok`) happened once, between its start and its end.

Every violation names the operations that show it, and a key (its kind and its subject)
that `shrink` keeps while it removes the others.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from tests.model.batch_rules import batches_atomic, replays_answer_alike
from tests.model.facts import (
    Appended,
    Facts,
    Violation,
    appended,
    facts_of,
    final_of,
    lineage_tokens,
    message_views,
    rewind_to,
    rewinds_removing,
    session_removals,
)
from tests.model.feed_rules import feeds_deliver
from tests.model.final import FinalState, KeyInfo
from tests.model.history import WRITES, Op
from tests.model.workload import msg_seq

__all__ = ["RULES", "Violation", "check"]

#: Stages of a rewind or fork copy expire by themselves after this long (STAGING_TTL_MS).
STAGING_TTL_MS = 600_000
SESSION_KEYED = frozenset("smiktygo")
TTL_KEYS = ("q:", "r:", "w:", "ws", "v")
ERASE_KEYS = ("e", "es", "el")
STATUSES = ("active", "in_progress", "completed", "abandoned", "archived")
ROLE_FIELDS = {"user": "user", "assistant": "assistant", "system": "system", "tool": "tool"}


def check(history: list[Op], final: FinalState) -> list[Violation]:
    facts = facts_of(history, final)
    out: list[Violation] = []
    for rule in RULES:
        out.extend(rule(facts, final))
    return out


# ---- helpers -------------------------------------------------------------------------


def _seen_sessions(op: Op) -> list[str]:
    """Sessions an acknowledged answer shows to exist (a feed poll: when it opened)."""
    if not op.ok or op.kind in ("create", "delete", "delete_all", "erase", "statistics"):
        return []
    if op.kind in ("search", "list"):
        return [s["session_id"] for s in op.body.get("sessions", [])]
    return [op.sid] if op.sid else []


def _seen_tokens(op: Op) -> list[tuple[str, str]]:
    """(session, message content) pairs an acknowledged read or feed poll shows."""
    return [(op.sid, m["content"]) for m in message_views(op)] if op.sid else []


# ---- rules ---------------------------------------------------------------------------


def acknowledged_appends(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Every acknowledged message (single or in a batch) is stored once, at its id,
    unless a rewind removed it. A keyed write answered twice (a replay after a rewind
    removed the first copy stores it anew) may be stored at either answer's id."""
    for sid, sent in facts.appends.items():
        acks: dict[str, list[Appended]] = defaultdict(list)
        for a in sent:
            if a.mid is not None:
                acks[a.token].append(a)
        for token, answers in acks.items():
            a = max(answers, key=lambda each: each.op.end)  # the latest answer
            op, mid = a.op, a.mid
            fs = final_of(final, op.user, sid)
            if fs is None:
                continue
            found = [m for m in fs.messages if m["content"] == token]
            if len(found) > 1:
                yield Violation(
                    "append-twice",
                    op.user,
                    f"{sid}/{token}",
                    f"acknowledged {op.kind} message {token} is stored {len(found)} times",
                    tuple(each.op.index for each in answers),
                )
            elif found and found[0]["message_id"] not in {each.mid for each in answers}:
                yield Violation(
                    "append-moved",
                    op.user,
                    f"{sid}/{mid}",
                    f"{op.kind} message acknowledged as {mid} is stored as "
                    f"{found[0]['message_id']}",
                    tuple(each.op.index for each in answers),
                )
            elif not found and not rewinds_removing(facts, sid, a.seq, op.start):
                yield Violation(
                    "append-lost",
                    op.user,
                    f"{sid}/{mid}",
                    f"acknowledged {op.kind} message {mid} ({token}) is missing and no "
                    "rewind could have removed it",
                    (op.index,),
                )


def reads_show_acknowledged(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A whole read of the messages (or summaries) that starts after an append, a batch
    (or a summary) was acknowledged shows it, unless a rewind that could have run between
    them removed it."""
    for read in facts.history:
        if not read.ok or read.sid is None or read.kind not in ("messages", "summaries"):
            continue
        if read.body.get("has_more"):
            continue
        acked: list[tuple[Op, str, int]] = []
        if read.kind == "messages":
            shown = {m["content"] for m in read.body.get("messages", [])}
            acked = [(a.op, a.token, a.seq) for a in facts.appends.get(read.sid, []) if a.mid]
        else:
            shown = {s["summary_id"] for s in read.body.get("summaries", [])}
            acked = [
                (op, op.body["summary_id"], msg_seq(op.body["covers_through"]))
                for op in facts.by_sid.get(read.sid, [])
                if op.kind == "summary" and op.ok
            ]
        for op, what, seq in acked:
            if op.end >= read.start or what in shown:
                continue
            between = [
                r for r in rewinds_removing(facts, read.sid, seq, op.start) if r.start < read.end
            ]
            if not between:
                kind = "summary" if op.kind == "summary" else "append"
                yield Violation(
                    f"{kind}-not-read",
                    op.user,
                    f"{read.sid}/{what}",
                    f"{op.kind} {what} was acknowledged before read #{read.index} "
                    "started, and the read does not show it; no rewind could "
                    "have removed it",
                    (op.index, read.index),
                )


def reads_respect_rewinds(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A message acknowledged before an acknowledged rewind started, and above the id
    the rewind keeps, is gone for good: no read, feed poll or final state that starts
    after the rewind answered shows it."""
    for sid, ops in facts.by_sid.items():
        rewinds = [op for op in ops if op.kind == "rewind" and op.ok]
        if not rewinds:
            continue
        acked = {(a.token, a.mid): a for a in facts.appends.get(sid, []) if a.mid}
        user = facts.owner.get(sid, ops[0].user)
        fs = final_of(final, user, sid)
        views = [(op.index, op.start, message_views(op)) for op in ops if message_views(op)]
        views += [(-1, final.at, fs.messages)] if fs is not None else []
        for index, start, messages in views:
            for m in messages:
                a = acked.get((m["content"], m["message_id"]))
                if a is None:
                    continue
                gone = [
                    r for r in rewinds
                    if a.op.end < r.start and rewind_to(r) < a.seq and r.end < start
                ]  # fmt: skip
                if gone:
                    where = f"read #{index}" if index >= 0 else "the final state"
                    yield Violation(
                        "rewound-read", user, f"{sid}/{a.mid}",
                        f"{a.mid} ({a.token}) was acknowledged before rewind "
                        f"#{gone[0].index} to {gone[0].args['body']['to_message_id']} "
                        f"started, yet {where}, after the rewind answered, shows it",
                        (a.op.index, gone[0].index) + ((index,) if index >= 0 else ()),
                    )  # fmt: skip


def stored_once(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Nothing appears twice; ids ascend; nothing stored or read was never sent."""
    for user, sessions in final.sessions.items():
        for sid, fs in sessions.items():
            tokens = [m["content"] for m in fs.messages]
            for token in {t for t in tokens if tokens.count(t) > 1}:
                yield Violation(
                    "stored-twice",
                    user,
                    f"{sid}/{token}",
                    f"message {token} is stored {tokens.count(token)} times in {sid}",
                    _ops_sending(facts, sid, token),
                )
            seqs = [msg_seq(m["message_id"]) for m in fs.messages]
            if seqs != sorted(set(seqs)):
                yield Violation("ids-out-of-order", user, sid, f"message ids of {sid}: {seqs}")
            allowed = lineage_tokens(facts, sid)
            for m in fs.messages:
                if m["content"] not in allowed:
                    yield Violation(
                        "never-sent",
                        user,
                        f"{sid}/{m['message_id']}",
                        f"{sid} holds {m['message_id']} ({m['content']}), which no "
                        "possible append to it or its fork sources sent",
                    )
    for op in facts.history:
        views = message_views(op) if op.sid else []
        allowed = lineage_tokens(facts, op.sid or "") if views else set()
        for m in views:
            if m["content"] not in allowed:
                yield Violation(
                    "never-sent", op.user, f"{op.sid}/{m['message_id']}",
                    f"{op.kind} #{op.index} shows {m['message_id']} ({m['content']}), which "
                    "no possible append or batch to the session or its fork sources sent",
                    (op.index,),
                )  # fmt: skip


def _ops_sending(facts: Facts, sid: str, token: str) -> tuple[int, ...]:
    return tuple(a.op.index for a in facts.appends.get(sid, []) if a.token == token)


def ids_never_reused(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """One message id (and one summary id) of a session names one message ever."""
    named: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for op in facts.history:
        if op.sid is not None and op.ok:
            for mid, content in _named_by(op):
                named[(op.sid, mid)].setdefault(content, op.index)
    for sessions in final.sessions.values():
        for sid, fs in sessions.items():
            for item in [*fs.messages, *fs.summaries]:
                mid = item.get("message_id") or item["summary_id"]
                named[(sid, mid)].setdefault(item["content"], -1)
    for (sid, mid), contents in named.items():
        if len(contents) > 1:
            user = facts.owner.get(sid, "?")
            ops = tuple(i for i in contents.values() if i >= 0)
            yield Violation(
                "id-reused", user, f"{sid}/{mid}", f"{sid} gave {mid} to {sorted(contents)}", ops
            )


def _named_by(op: Op) -> list[tuple[str, str]]:
    """(message or summary id, content) pairs an acknowledged answer shows."""
    if op.kind in ("append", "batch"):
        return [(a.mid, a.token) for a in appended(op) if a.mid]
    if op.kind == "feed":
        return [
            (e["data"]["message_id" if e["event"] == "message" else "summary_id"],
             e["data"]["content"])
            for e in op.body.get("events", []) if e["event"] in ("message", "summary")
        ]  # fmt: skip
    if op.kind == "summary":
        return [(op.body["summary_id"], op.body["content"])]
    if op.kind == "messages":
        return [(m["message_id"], m["content"]) for m in op.body.get("messages", [])]
    if op.kind == "summaries":
        return [(m["summary_id"], m["content"]) for m in op.body.get("summaries", [])]
    return []


def summaries_survive(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """An acknowledged summary stays unless a rewind removed a message it covers."""
    for op in facts.history:
        if op.kind != "summary" or not op.ok or op.sid is None:
            continue
        fs = final_of(final, op.user, op.sid)
        if fs is None:
            continue
        sid_ = op.body["summary_id"]
        if any(s["summary_id"] == sid_ for s in fs.summaries):
            continue
        covers = msg_seq(op.body["covers_through"])
        if not rewinds_removing(facts, op.sid, covers, op.start):
            yield Violation(
                "summary-lost",
                op.user,
                f"{op.sid}/{sid_}",
                f"acknowledged summary {sid_} (covers {op.body['covers_through']}) "
                "is gone and no rewind removed what it covers",
                (op.index,),
            )
    for user, sessions in final.sessions.items():
        for sid, fs in sessions.items():
            sent = {
                op.args["body"]["content"]
                for op in facts.by_sid.get(sid, [])
                if op.kind == "summary" and op.possible
            }
            for s in fs.summaries:
                if s["content"] not in sent and facts.parent.get(sid) is None:
                    yield Violation(
                        "summary-never-sent",
                        user,
                        f"{sid}/{s['summary_id']}",
                        f"{sid} holds summary {s['content']} nobody sent",
                    )


def sessions_survive(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """An acknowledged session stays until a delete, delete-all, erase or its expiry."""
    for sid, op in facts.created.items():
        if facts.short.get(sid, True) or final_of(final, op.user, sid) is not None:
            continue
        if any(r.end > op.start for r in session_removals(facts, sid, op.user)):
            continue
        yield Violation(
            "session-lost",
            op.user,
            sid,
            f"session {sid} (long timeout) is gone and nothing deleted it",
            (op.index,),
        )


def _removal_rule(kind: str, erase: bool) -> Any:
    def rule(facts: Facts, final: FinalState) -> Iterable[Violation]:
        for gone in facts.history:
            if gone.kind != kind or not gone.ok:
                continue
            user = gone.user
            for op in facts.by_user.get(user, []):
                if op.start <= gone.end:
                    continue
                yield from _stale(
                    facts, gone, op.user, _seen_sessions(op), _seen_tokens(op), op.index, erase
                )
            sessions = final.sessions.get(user, {})
            tokens = [(sid, m["content"]) for sid, fs in sessions.items() for m in fs.messages]
            yield from _stale(facts, gone, user, list(sessions), tokens, -1, erase)

    rule.__name__ = f"{kind}_leaves_nothing_older"
    rule.__doc__ = f"After an acknowledged {kind}, nothing that existed before it is readable."
    return rule


def _stale(
    facts: Facts,
    gone: Op,
    user: str,
    sids: list[str],
    tokens: list[tuple[str, str]],
    seen: int,
    erase: bool,
) -> Iterable[Violation]:
    where = f"read #{seen}" if seen >= 0 else "the final state"
    for sid in sids:
        created = facts.created.get(sid)
        if created is not None and created.end < gone.start:
            ops = (created.index, gone.index) + ((seen,) if seen >= 0 else ())
            yield Violation(
                f"{gone.kind}-left-session",
                user,
                sid,
                f"{sid} existed before {gone.kind} #{gone.index} answered, yet {where} shows it",
                ops,
                (sid,),
            )
    if erase:
        for sid, token in tokens:
            acked = facts.acked_at.get(token)
            if acked is not None and acked < gone.start:
                yield Violation(
                    "erase-left-message",
                    user,
                    token,
                    f"message {token} was acknowledged before erase #{gone.index}, "
                    f"yet {where} shows it in {sid}",
                    (gone.index,) + ((seen,) if seen >= 0 else ()),
                    (sid,),
                )


def expired_unreadable(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A short-lived session is not readable once its deadline (its last possible
    activity plus DEFAULT_SESSION_TTL) has passed."""
    ttl = final.short_ttl_seconds
    for read in facts.history:
        for sid in _seen_sessions(read):
            created = facts.created.get(sid)
            if created is None or not facts.short.get(sid, False) or created.start > read.start:
                continue
            touched = [op for op in _touching(facts, sid) if op.possible and op.start < read.start]
            if any(op.kind in ("archive", "restore", "status") for op in touched):
                continue  # an archived session keeps its retention, not the short timeout
            last = max([created.end, *(op.end for op in touched)])
            # One second of slack: deadlines are whole milliseconds of the server's clock.
            if read.start > last + ttl + 1.0:
                yield Violation(
                    "expired-readable", read.user, f"{sid}/{read.index}",
                    f"{sid} was last touched at most {read.start - last:.2f} s before read "
                    f"#{read.index}, past its {ttl} s timeout, yet the read shows it",
                    (created.index, read.index),
                )  # fmt: skip


def _touching(facts: Facts, sid: str) -> list[Op]:
    """Writes that may move a session's deadline: its own, and resumes by client_id."""
    client_id = facts.client_ids.get(sid)
    out = [op for op in facts.by_sid.get(sid, []) if op.kind in WRITES]
    if client_id:
        out += [
            op
            for op in facts.by_user.get(facts.owner.get(sid, ""), [])
            if op.kind == "create" and op.args.get("body", {}).get("client_id") == client_id
        ]
    return out


def counters_match(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Counts and token totals equal what the stored data says."""
    for user, sessions in final.sessions.items():
        by_status = dict.fromkeys(STATUSES, 0)
        total_messages = 0
        for sid, fs in sessions.items():
            by_status[fs.body["status"]] = by_status.get(fs.body["status"], 0) + 1
            count = len(fs.messages)
            total_messages += count
            tokens = sum(m["token_count"] for m in fs.messages)
            expected: dict[str, Any] = {
                "session.message_count": count,
                "stats.message_count": count,
                "stats.total_tokens": tokens,
            }
            actual: dict[str, Any] = {
                "session.message_count": fs.body["message_count"],
                "stats.message_count": fs.stats.get("message_count"),
                "stats.total_tokens": fs.stats.get("total_tokens"),
            }
            for role in ROLE_FIELDS:
                of_role = [m for m in fs.messages if m["role"] == role]
                expected[f"stats.{role}_message_count"] = len(of_role)
                actual[f"stats.{role}_message_count"] = fs.stats.get(f"{role}_message_count")
                by_role = fs.stats.get("total_tokens_by_role", {})
                if of_role or role in by_role:
                    expected[f"stats.tokens.{role}"] = sum(m["token_count"] for m in of_role)
                    actual[f"stats.tokens.{role}"] = by_role.get(role, 0)
            for name, value in expected.items():
                if actual[name] != value:
                    yield Violation(
                        "counter",
                        user,
                        f"{sid}/{name}",
                        f"{sid}: {name} is {actual[name]}, the data says {value}",
                    )
        stats = final.statistics.get(user, {})
        checks = {
            "total_sessions": len(sessions),
            "total_messages": total_messages,
            **{f"by_status.{s}": n for s, n in by_status.items()},
        }
        for name, value in checks.items():
            if name.startswith("by_status."):
                got = stats.get("by_status", {}).get(name.split(".", 1)[1])
            else:
                got = stats.get(name)
            if got != value:
                yield Violation(
                    "counter",
                    user,
                    f"statistics/{name}",
                    f"statistics of {user}: {name} is {got}, the data says {value}",
                )


_SESSION_BODIES = ("get", "update", "status", "archive", "restore", "create")


def etags_track_state(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Equal ETags show equal state; a changed state shows a new ETag."""
    for sid, seen in _session_views(facts, final).items():
        user = facts.owner.get(sid, "?")
        by_etag: dict[str, tuple[str, int]] = {}
        by_body: dict[str, tuple[str, int]] = {}
        for etag, body, index in seen:
            first = by_etag.setdefault(etag, (body, index))
            if first[0] != body:
                yield Violation(
                    "etag-same-state-differs", user, f"{sid}/{etag}",
                    f"{sid}: ETag {etag} on two different states",
                    tuple(i for i in (first[1], index) if i >= 0),
                )  # fmt: skip
            other = by_body.setdefault(body, (etag, index))
            if other[0] != etag and not _written_between(facts, sid, other[1], index):
                yield Violation(
                    "etag-moved-no-change", user, f"{sid}/{body[:40]}",
                    f"{sid}: one state under ETags {other[0]} and {etag}",
                    tuple(i for i in (other[1], index) if i >= 0),
                )  # fmt: skip


def _session_views(facts: Facts, final: FinalState) -> dict[str, list[tuple[str, str, int]]]:
    """sid -> (ETag, the session as shown, op index or -1 for the final read)."""
    views: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for op in facts.history:
        if op.kind == "feed" and op.ok:
            # A feed's `session` event: the session as GET answers it, and its ETag.
            for e in op.body.get("events", []):
                if e["event"] == "session":
                    session = e["data"]["session"]
                    body = {k: v for k, v in session.items() if k != "messages"}
                    views[session["session_id"]].append(
                        (e["data"]["etag"], json.dumps(body, sort_keys=True), op.index)
                    )
            continue
        if op.kind not in _SESSION_BODIES or not op.ok or not op.etag:
            continue
        if not isinstance(op.body, dict) or "session_id" not in op.body:
            continue
        body = {k: v for k, v in op.body.items() if k not in ("session_resumed", "messages")}
        views[op.body["session_id"]].append((op.etag, json.dumps(body, sort_keys=True), op.index))
    for sessions in final.sessions.values():
        for sid, fs in sessions.items():
            if fs.etag:
                body = {k: v for k, v in fs.body.items() if k != "messages"}
                views[sid].append((fs.etag, json.dumps(body, sort_keys=True), -1))
    return views


def messages_etags_track_state(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Two whole reads of the messages under one messages ETag show the same messages."""
    lists: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for op in facts.history:
        if op.kind == "messages" and op.ok and op.etag and not op.body.get("has_more"):
            content = json.dumps([(m["message_id"], m["content"]) for m in op.body["messages"]])
            first = lists[op.sid or ""].setdefault(op.etag, (content, op.index))
            if first[0] != content:
                yield Violation(
                    "messages-etag-same-state-differs", op.user, f"{op.sid}/{op.etag}",
                    f"{op.sid}: messages ETag {op.etag} on two different lists",
                    (first[1], op.index),
                )  # fmt: skip


def _written_between(facts: Facts, sid: str, first: int, second: int) -> bool:
    """A write that may have touched `sid` ran between two views (-1: the final read).

    Timestamps have millisecond resolution: a heartbeat or a resume within the
    millisecond of the last activity changes the session's version but no field, so
    two such views are only compared when nothing could have written in between."""
    views = [facts.index.get(i) for i in (first, second)]
    lo = min(v.start if v is not None else float("inf") for v in views)
    hi = max(v.end if v is not None else float("inf") for v in views)
    client_id = facts.client_ids.get(sid)
    for op in facts.by_user.get(facts.owner.get(sid, ""), []):
        if op.kind not in WRITES or not op.possible or op.end < lo or op.start > hi:
            continue
        if op.sid == sid or op.kind in ("delete_all", "erase"):
            return True
        body = op.args.get("body", {})
        if op.kind == "create" and client_id and body.get("client_id") == client_id:
            return True
    return False


def walks_exact(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """A search walk shows every session that lived through it, each exactly once."""
    walks: dict[int, list[Op]] = defaultdict(list)
    for op in facts.history:
        if op.walk is not None and op.kind in ("search", "list"):
            walks[op.walk].append(op)
    for pages in walks.values():
        first, last = pages[0], pages[-1]
        if not all(p.ok for p in pages) or last.body.get("next_cursor"):
            continue
        if first.kind == "list" and (
            first.body.get("offset", 0) != 0 or not _quiet(facts, first.user, first, last)
        ):
            continue  # offset pages are exact only while nothing reorders the sessions
        shown = [s["session_id"] for p in pages for s in p.body["sessions"]]
        ops = tuple(p.index for p in pages)
        for sid in {s for s in shown if shown.count(s) > 1}:
            yield Violation(
                f"{first.kind}-walk-repeats", first.user, f"walk{first.walk}/{sid}",
                f"walk {first.walk} showed {sid} {shown.count(sid)} times", ops,
            )  # fmt: skip
        if first.kind == "search":
            yield from _walk_misses(facts, first, last, set(shown), ops)


def _quiet(facts: Facts, user: str, first: Op, last: Op) -> bool:
    """No write of the user could have run during the walk."""
    return not any(
        op.possible and op.kind in WRITES and op.start < last.end and op.end > first.start
        for op in facts.by_user.get(user, [])
    )


def _walk_misses(
    facts: Facts, first: Op, last: Op, shown: set[str], ops: tuple[int, ...]
) -> Iterable[Violation]:
    user = first.user
    for sid, created in facts.created.items():
        if created.user != user or created.end >= first.start or facts.short.get(sid, True):
            continue
        if sid in shown or any(r.start < last.end for r in session_removals(facts, sid, user)):
            continue
        yield Violation(
            "search-walk-missed", user, f"walk{first.walk}/{sid}",
            f"walk {first.walk} never showed {sid}, which lived through it",
            (created.index, *ops),
        )  # fmt: skip


def no_orphan_keys(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Every key belongs to a live session of a known user, or expires by itself; the
    indexes name exactly the live sessions."""
    encoded = {_encode(u): u for u in final.sessions}
    index: dict[tuple[str, str], set[str]] = defaultdict(set)
    for info in final.keys:
        if info.key.startswith("fms:lease:"):
            continue
        head, _, rest = info.key.partition("}:")
        user = encoded.get(head.removeprefix("fms:{"))
        if user is None:
            yield Violation("orphan-key", "?", info.key, f"{info.key}: no user of this run")
            continue
        if rest in ("x", "n") or rest.startswith("z:"):
            index[(user, rest)] = set(info.members)
        why = _orphan(facts, final, user, rest, info)
        if why:
            kind = "index-names-dead" if rest in ("x", "n") or rest[:2] == "z:" else "orphan-key"
            yield Violation(kind, user, info.key, f"{info.key} ({info.type}): {why}")
    for user, sessions in final.sessions.items():
        for sid, fs in sessions.items():
            for name in ("x", *(f"z:{s}" for s in STATUSES)):
                inside = sid in index.get((user, name), set())
                if inside != (name == "x" or name == f"z:{fs.body['status']}"):
                    yield Violation(
                        "index-misses-live", user, f"{name}/{sid}",
                        f"{sid} is {fs.body['status']}, yet {'in' if inside else 'not in'} "
                        f"the {name} index", (), (sid,),
                    )  # fmt: skip


def _orphan(facts: Facts, final: FinalState, user: str, rest: str, info: KeyInfo) -> str:
    """Why the key should not exist ('' when a rule of the layout explains it)."""
    live = final.sessions[user]
    if rest[1:2] == ":" and rest[:1] in SESSION_KEYED:
        # A copy in progress: its staging keys and its owner marker (`o:`).
        staged = rest[:1] in "mtyigo" and 0 < info.pttl <= STAGING_TTL_MS
        return "" if rest[2:] in live or staged else f"no live session owns it (pttl {info.pttl})"
    if rest.startswith("c:"):
        fs = live.get(info.value or "")
        client_id = bytes.fromhex(rest[2:]).decode("utf-8", "replace")
        if fs is None or fs.body.get("client_id") != client_id:
            return f"names {info.value}, not a live session with client_id {client_id}"
        return ""
    if rest in ("x", "n") or rest.startswith("z:"):
        dead = sorted(set(info.members) - set(live))
        return f"names {dead}, not live sessions" if dead else ""
    if rest == "u" or (rest.startswith(TTL_KEYS) and info.pttl > 0):
        return ""
    if rest in ERASE_KEYS:
        # An erase's queue (`e`), its marks (`es`) and the forks it must still drop (`el`)
        # outlive it only when it stopped half-way, or until their own TTL.
        erases = [op for op in facts.by_user.get(user, []) if op.kind == "erase"]
        stopped = bool(erases) and not erases[-1].ok
        return "" if stopped or (rest != "e" and info.pttl > 0) else "left by a finished erase"
    return f"a key no rule of the layout explains (pttl {info.pttl})"


def _encode(user: str) -> str:
    return base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode()


RULES = (
    acknowledged_appends,
    reads_show_acknowledged,
    reads_respect_rewinds,
    batches_atomic,
    replays_answer_alike,
    stored_once,
    ids_never_reused,
    summaries_survive,
    sessions_survive,
    _removal_rule("erase", erase=True),
    _removal_rule("delete_all", erase=False),
    expired_unreadable,
    counters_match,
    etags_track_state,
    messages_etags_track_state,
    walks_exact,
    feeds_deliver,
    no_orphan_keys,
)
