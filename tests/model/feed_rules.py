"""The change feed's rules: what docs/events.md promises a client that polls and resumes.

A feed in the history is a sequence of header-only polls of one session (they share
`Op.walk`), each resuming from the `last_event_id` of the one before. The docs promise:

- a poll with `Last-Event-ID` sends every message after that one, in order, with no
  gap and no duplicate, a page (100 messages) at a time: so message event ids strictly
  increase within a poll and across the resumed sequence, and all lie above the cursor
  (`feed-out-of-order`); each event's `id` is its message's id (`feed-event-id`);
- every message stored after the cursor when the poll reads is in it: a message
  acknowledged before the poll started, or one with an id below a message the poll
  shows (ids are given at commit, so it was committed before that one), is in the
  poll unless the page is full or something could have removed it (`feed-missed`);
- across the resumed sequence, a cursor never jumps over a message: every acknowledged
  message between the first cursor and the last `last_event_id` was sent by one of the
  polls, unless something could have removed it (`feed-skipped`);
- one wake-up's events come in the order rewound, messages, summaries, session
  (`feed-event-order`);
- the session and the messages a watcher sends come from one atomic read, so a poll
  that starts at the first message and shows all of them carries a `session` event
  (when it carries one) whose `message_count` is their number (`feed-session-count`);
- a `rewound` event only when a rewind could have removed the cursor's message, and it
  names an id below the cursor (`feed-rewound-unexplained`);
- a `deleted` event only when a delete, delete-all, erase or expiry could have removed
  the session (`feed-deleted-unexplained`).

Message events are also views like any read: the checker's id rule (one id, one content),
the sent rule (`never-sent`), the erase rule, the rewind rule and the batch rule read
them too. Summaries and session states are current state, not history: the docs
do not replay them, so no rule asks a resumed poll for them; a `session` event's ETag
and session join the ETag rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from session_service.store.watch import PAGE
from tests.model.facts import (
    Appended,
    Facts,
    Violation,
    feed_cursor,
    final_of,
    message_views,
    rewind_to,
    rewinds_removing,
    session_removals,
)
from tests.model.final import FinalState
from tests.model.history import Op
from tests.model.workload import msg_seq


def feeds_deliver(facts: Facts, final: FinalState) -> Iterable[Violation]:
    """Each feed's polls, in order: ordered ids, nothing missed, explained cuts."""
    feeds: dict[int, list[Op]] = defaultdict(list)
    for op in facts.history:
        if op.kind == "feed" and op.walk is not None:
            feeds[op.walk].append(op)
    for polls in feeds.values():
        newest = 0  # the highest message id the sequence has shown
        answered: list[Op] = []
        for poll in polls:
            if not poll.ok or poll.sid is None:
                break
            answered.append(poll)
            yield from _ordered(poll, newest)
            shown = [msg_seq(m["message_id"]) for m in message_views(poll)]
            newest = max([newest, *shown])
            yield from _nothing_missed(facts, final, poll)
            yield from _cuts_explained(facts, poll)
        yield from _nothing_skipped(facts, final, answered)
    for polls in feeds.values():
        for poll in polls:
            if poll.ok:
                yield from _session_matches_messages(poll)


#: "Within one wake-up the order is: rewound, messages (oldest first), summaries, session"
#: (and a `deleted` event ends the feed). A poll answers one wake-up's events.
RANK = {"rewound": 0, "message": 1, "summary": 2, "session": 3, "deleted": 4}


def _ordered(poll: Op, newest: int) -> Iterable[Violation]:
    cursor = feed_cursor(poll)
    floor = max(newest, cursor or 0)
    subject = f"{poll.sid}/feed{poll.walk}"
    kinds = [e["event"] for e in poll.body["events"]]
    ranks = [RANK.get(k, -1) for k in kinds]
    if ranks != sorted(ranks) or -1 in ranks:
        yield Violation(
            "feed-event-order", poll.user, subject,
            f"poll #{poll.index} sends its events in the order {kinds}", (poll.index,),
        )  # fmt: skip
    for event in poll.body["events"]:
        if event["event"] != "message":
            continue
        mid = event["data"]["message_id"]
        if event.get("id") != mid:
            yield Violation(
                "feed-event-id", poll.user, f"{subject}/{mid}",
                f"poll #{poll.index}: a message event with id {event.get('id')} carries {mid}",
                (poll.index,),
            )  # fmt: skip
        if msg_seq(mid) <= floor:
            yield Violation(
                "feed-out-of-order", poll.user, subject,
                f"poll #{poll.index} (after {poll.args['headers'].get('Last-Event-ID')}) "
                f"sends {mid}, not above msg seq {floor}, the cursor or an id the feed "
                "already sent",
                (poll.index,),
            )  # fmt: skip
        floor = max(floor, msg_seq(mid))


def _nothing_missed(facts: Facts, final: FinalState, poll: Op) -> Iterable[Violation]:
    cursor = feed_cursor(poll)
    events = poll.body["events"]
    if cursor is None or any(e["event"] == "deleted" for e in events):
        return
    sid = poll.sid or ""
    messages = message_views(poll)
    shown = {m["content"] for m in messages}
    top = max((msg_seq(m["message_id"]) for m in messages), default=0)
    full = len(messages) >= PAGE
    for a in facts.appends.get(sid, []):
        if a.mid is None or a.seq <= cursor or a.token in shown:
            continue
        if not (a.op.end < poll.start or a.seq < top) or (full and a.seq > top):
            continue
        if _maybe_removed(facts, final, a, poll):
            continue
        when = "acknowledged before it started" if a.op.end < poll.start else "below an id it shows"
        yield Violation(
            "feed-missed", poll.user, f"{sid}/{a.mid}",
            f"poll #{poll.index} after {poll.args['headers'].get('Last-Event-ID')} does not "
            f"send {a.mid} ({a.token}, {when}), and nothing could have removed it",
            (a.op.index, poll.index), (sid,),
        )  # fmt: skip


def _maybe_removed(facts: Facts, final: FinalState, a: Appended, poll: Op) -> bool:
    """Something that could have run before the poll ended removed the message (it is
    not in the final state at its id, and a rewind or a removal of its session could
    have run after it was sent)."""
    fs = final_of(final, poll.user, a.sid)
    if fs is not None and any(
        m["message_id"] == a.mid and m["content"] == a.token for m in fs.messages
    ):
        return False
    rewinds = rewinds_removing(facts, a.sid, a.seq, a.op.start)
    removals = session_removals(facts, a.sid, poll.user)
    return any(r.start < poll.end for r in [*rewinds, *removals])


def _cuts_explained(facts: Facts, poll: Op) -> Iterable[Violation]:
    sid = poll.sid or ""
    cursor = feed_cursor(poll)
    for event in poll.body["events"]:
        if event["event"] == "rewound" and cursor and sid not in facts.parent:
            kept = event["data"].get("last_message_id")
            ours = any(a.seq == cursor for a in facts.appends.get(sid, []) if a.mid)
            rewinds = [
                r for r in facts.by_sid.get(sid, [])
                if r.kind == "rewind" and r.possible and r.start < poll.end
                and rewind_to(r) < cursor
            ]  # fmt: skip
            below = kept is None or msg_seq(kept) < cursor
            if not below or (ours and not rewinds):
                yield Violation(
                    "feed-rewound-unexplained", poll.user, f"{sid}/feed{poll.walk}",
                    f"poll #{poll.index} after msg seq {cursor} says rewound to {kept}, "
                    "and no rewind could have removed the cursor's message",
                    (poll.index,),
                )  # fmt: skip
        if event["event"] == "deleted" and facts.short.get(sid) is False:
            removals = session_removals(facts, sid, poll.user)
            if not any(r.start < poll.end for r in removals):
                yield Violation(
                    "feed-deleted-unexplained", poll.user, f"{sid}/feed{poll.walk}",
                    f"poll #{poll.index} says {sid} was deleted; it is long-lived and "
                    "no delete, delete-all or erase could have removed it",
                    (poll.index,),
                )  # fmt: skip


def _nothing_skipped(facts: Facts, final: FinalState, polls: list[Op]) -> Iterable[Violation]:
    """Across a resumed sequence, every acknowledged message between where it started
    and the last `last_event_id` it was given was sent by one of its polls: a cursor
    never jumps over a message."""
    if not polls:
        return
    start = feed_cursor(polls[0])
    if start is None:  # opened from now: owed is what follows its first last_event_id
        start = msg_seq(polls[0].body["last_event_id"])
    end = msg_seq(polls[-1].body["last_event_id"])
    sid = polls[0].sid or ""
    sent = {m["message_id"]: m["content"] for poll in polls for m in message_views(poll)}
    shown = set(sent.values())
    if any(e["event"] == "deleted" for poll in polls for e in poll.body["events"]):
        return
    for a in facts.appends.get(sid, []):
        if a.mid is None or not start < a.seq <= end or a.token in shown:
            continue
        if _maybe_removed(facts, final, a, polls[-1]):
            continue
        if a.mid in sent:
            # The feed sent another message under this id: one the id now names was
            # lost (a failover), and the id reused. That is `id-reused`, seen here.
            yield Violation(
                "id-reused", polls[0].user, f"{sid}/{a.mid}",
                f"the feed sent {a.mid} as {sent[a.mid]}; it was acknowledged as {a.token}",
                (a.op.index, *(p.index for p in polls)), (sid,),
            )  # fmt: skip
            continue
        yield Violation(
            "feed-skipped", polls[0].user, f"{sid}/{a.mid}",
            f"the polls #{polls[0].index}..#{polls[-1].index} moved the cursor from msg seq "
            f"{start} to {end} without sending {a.mid} ({a.token})",
            (a.op.index, *(p.index for p in polls)), (sid,),
        )  # fmt: skip


def _session_matches_messages(poll: Op) -> Iterable[Violation]:
    """A poll's session and messages come from one atomic read: when the poll starts at
    the first message and shows all of them, its `session` event counts exactly those."""
    events = poll.body["events"]
    if feed_cursor(poll) != 0 or any(e["event"] == "rewound" for e in events):
        return
    shown = message_views(poll)
    if len(shown) >= PAGE:
        return
    for e in events:
        if e["event"] == "session" and e["data"]["session"]["message_count"] != len(shown):
            yield Violation(
                "feed-session-count", poll.user, f"{poll.sid}/feed{poll.walk}",
                f"poll #{poll.index} from the first message sends {len(shown)} messages and "
                f"a session with message_count {e['data']['session']['message_count']}",
                (poll.index,),
            )  # fmt: skip
