"""The batch and feed rules can fail: hand-written histories, each breaking one promise,
and the same history with the excuse the docs allow, which must pass.

No server: the checker reads only the recorded history and the final state, so each
case writes both by hand (ids, contents and times as a run would record them).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.model.checker import check
from tests.model.final import FinalSession, FinalState
from tests.model.history import Op
from tests.model.workload import LONG_TIMEOUT_MINUTES

SID = "sess_model_rules"
USER = "alice"


class History:
    """A history written in order; each operation takes one tick unless told."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.clock = 0.0

    def add(
        self, kind: str, args: dict[str, Any], status: int | None, body: Any = None,
        sid: str | None = SID, took: float = 1.0, start: float | None = None,
        walk: int | None = None,
    ) -> Op:  # fmt: skip
        begin = self.clock if start is None else start
        op = Op(len(self.ops), 0, 0, kind, USER, sid, args, begin, begin + took, status, body,
                walk=walk)  # fmt: skip
        self.clock = max(self.clock, op.end) + 0.1
        self.ops.append(op)
        return op

    def create(self) -> Op:
        body = {"session_id": SID, "timeout_minutes": LONG_TIMEOUT_MINUTES}
        return self.add("create", {"body": {}}, 201, body, sid=None)

    def append(self, token: str, mid: str | None, status: int = 201) -> Op:
        body = {"message": {"message_id": mid}} if mid else None
        return self.add("append", {"body": {"role": "user", "content": token}}, status, body)

    def batch(self, tokens: list[str], mids: list[str] | None, status: int | None = 201) -> Op:
        messages = [{"role": "user", "content": t} for t in tokens]
        body = {"messages": [{"message_id": m} for m in mids]} if mids else None
        return self.add("batch", {"body": {"messages": messages}}, status, body)

    def rewind(self, to: str, status: int = 200) -> Op:
        return self.add("rewind", {"body": {"to_message_id": to}}, status, {"removed": 1})

    def poll(self, cursor: str | None, events: list[dict[str, Any]], walk: int = 1,
             last: str = "msg_0000000000") -> Op:  # fmt: skip
        headers = {"Last-Event-ID": cursor} if cursor else {}
        body = {"events": events, "last_event_id": last}
        return self.add("feed", {"headers": headers}, 200, body, walk=walk)


def message(mid: str, token: str) -> dict[str, Any]:
    return {"message_id": mid, "content": token, "role": "user", "token_count": 1}


def event(mid: str, token: str) -> dict[str, Any]:
    return {"event": "message", "id": mid, "data": message(mid, token)}


def final(*stored: tuple[str, str]) -> FinalState:
    messages = [message(mid, token) for mid, token in stored]
    session = FinalSession(
        {"session_id": SID, "timeout_minutes": LONG_TIMEOUT_MINUTES, "status": "active",
         "message_count": len(messages)},
        None, messages, None, [], {}, [],
    )  # fmt: skip
    return FinalState(1e9, {USER: {SID: session}}, {}, [])


def kinds(history: History, state: FinalState) -> set[str]:
    return {v.kind for v in check(history.ops, state)}


NEW_KINDS = {
    "batch-partial", "batch-not-contiguous", "batch-ids-not-contiguous", "append-lost",
    "append-not-read", "feed-missed", "feed-out-of-order", "feed-event-id",
    "feed-rewound-unexplained", "feed-deleted-unexplained", "rewound-read", "never-sent",
    "feed-skipped",
}  # fmt: skip


def test_a_whole_batch_stored_after_a_lost_answer_breaks_no_rule() -> None:
    h = History()
    h.create()
    h.batch(["a", "b", "c"], None, status=None)
    h.poll("msg_0000000000", [event("msg_0000000001", "a"), event("msg_0000000002", "b"),
                              event("msg_0000000003", "c")])  # fmt: skip
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"), ("msg_0000000003", "c"))
    assert not kinds(h, stored) & NEW_KINDS


@pytest.mark.parametrize("status", [None, 201])
def test_half_a_batch_is_a_violation_unless_a_rewind_cut_it_there(status: int | None) -> None:
    h = History()
    h.create()
    mids = ["msg_0000000001", "msg_0000000002", "msg_0000000003"] if status else None
    h.batch(["a", "b", "c"], mids, status=status)
    half = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert "batch-partial" in kinds(h, half)
    if status:  # its third message was acknowledged: it is lost too
        assert "append-lost" in kinds(h, half)
    h.rewind("msg_0000000002")
    assert not kinds(h, half) & NEW_KINDS


def test_a_batch_split_by_another_message_is_not_contiguous() -> None:
    h = History()
    h.create()
    h.batch(["a", "b"], None, status=503)
    h.append("x", "msg_0000000002")
    split = final(("msg_0000000001", "a"), ("msg_0000000002", "x"), ("msg_0000000003", "b"))
    assert "batch-not-contiguous" in kinds(h, split)


def test_a_batch_answered_with_a_gap_in_its_ids() -> None:
    h = History()
    h.create()
    h.batch(["a", "b"], ["msg_0000000001", "msg_0000000003"])
    assert "batch-ids-not-contiguous" in kinds(
        h, final(("msg_0000000001", "a"), ("msg_0000000003", "b"))
    )


def test_a_poll_must_send_what_was_acknowledged_after_its_cursor() -> None:
    h = History()
    h.create()
    h.batch(["a", "b"], ["msg_0000000001", "msg_0000000002"])
    h.poll("msg_0000000001", [])
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert "feed-missed" in kinds(h, stored)
    h.ops[-1].body["events"] = [event("msg_0000000002", "b")]
    assert not kinds(h, stored) & NEW_KINDS


def test_a_poll_may_miss_what_a_rewind_removed_but_not_a_gap_below_what_it_sends() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    h.append("b", "msg_0000000002")
    rewind = h.rewind("msg_0000000001", status=503)  # its answer was lost
    h.append("c", "msg_0000000003")
    h.poll("msg_0000000000", [event("msg_0000000001", "a")], last="msg_0000000001")
    stored = final(("msg_0000000001", "a"), ("msg_0000000003", "c"))
    # b may be gone (the rewind may have run), c was acknowledged before the poll.
    assert "feed-missed" in kinds(h, stored)
    h.ops[-1].body["events"].append(event("msg_0000000003", "c"))
    assert not kinds(h, stored) & NEW_KINDS
    # Without the rewind, b cannot be gone: the poll shows c above it, so it skipped b.
    h.ops.remove(rewind)
    assert "feed-missed" in kinds(h, stored)


def test_resumed_polls_never_send_an_id_twice_or_backwards() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    h.append("b", "msg_0000000002")
    h.poll("msg_0000000000", [event("msg_0000000001", "a"), event("msg_0000000002", "b")],
           last="msg_0000000002")  # fmt: skip
    h.poll("msg_0000000002", [event("msg_0000000002", "b")], last="msg_0000000002")
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert "feed-out-of-order" in kinds(h, stored)
    h.ops[-1].body["events"] = []
    assert not kinds(h, stored) & NEW_KINDS


def test_rewound_and_deleted_events_need_a_cause() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    h.append("b", "msg_0000000002")
    rewound = {"event": "rewound", "data": {"session_id": SID, "last_message_id": None}}
    deleted = {"event": "deleted", "data": {"session_id": SID}}
    h.poll("msg_0000000002", [rewound, deleted])
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert {"feed-rewound-unexplained", "feed-deleted-unexplained"} <= kinds(h, stored)
    h.rewind("msg_0000000000", status=503)
    h.add("delete", {}, 204, start=h.ops[-2].start)
    h.ops[-3].end = h.clock + 1  # the poll now ends after both started
    assert not kinds(h, final()) & NEW_KINDS


def test_nothing_shows_what_an_acknowledged_rewind_removed() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    h.append("b", "msg_0000000002")
    h.rewind("msg_0000000001")
    h.poll("msg_0000000000", [event("msg_0000000001", "a"), event("msg_0000000002", "b")])
    assert "rewound-read" in kinds(h, final(("msg_0000000001", "a")))
    assert "rewound-read" in kinds(h, final(("msg_0000000001", "a"), ("msg_0000000002", "b")))


def test_a_feed_event_nobody_sent() -> None:
    h = History()
    h.create()
    h.poll("msg_0000000000", [event("msg_0000000001", "ghost")])
    assert "never-sent" in kinds(h, final())


def test_a_cursor_never_jumps_over_a_message() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    # The first poll sends a, but answers a last_event_id past b, which was being
    # appended while it read (so that poll does not owe b) ...
    first = h.poll("msg_0000000000", [event("msg_0000000001", "a")], last="msg_0000000002")
    h.append("b", "msg_0000000002")
    h.ops[-1].start = first.start
    h.append("c", "msg_0000000003")
    # ... and the next poll, resuming from it, sends c only: b is never sent.
    h.poll("msg_0000000002", [event("msg_0000000003", "c")], last="msg_0000000003")
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"), ("msg_0000000003", "c"))
    assert "feed-skipped" in kinds(h, stored)
    h.ops[-1].args["headers"]["Last-Event-ID"] = "msg_0000000001"
    h.ops[-1].body["events"].insert(0, event("msg_0000000002", "b"))
    assert not kinds(h, stored) & NEW_KINDS


def test_one_wake_ups_events_come_in_the_documented_order() -> None:
    h = History()
    h.create()
    h.append("a", "msg_0000000001")
    session = {"event": "session", "data": {"etag": '"1.s1"', "session": {
        "session_id": SID, "message_count": 1}}}  # fmt: skip
    h.poll("msg_0000000000", [session, event("msg_0000000001", "a")], last="msg_0000000001")
    stored = final(("msg_0000000001", "a"))
    assert "feed-event-order" in kinds(h, stored)
    h.ops[-1].body["events"].reverse()
    assert not kinds(h, stored) & (NEW_KINDS | {"feed-event-order", "feed-session-count"})
    # The same read counts a second message it does not send: not one atomic read.
    h.ops[-1].body["events"][1]["data"]["session"]["message_count"] = 2
    assert "feed-session-count" in kinds(h, stored)


def test_a_batchs_messages_share_one_timestamp() -> None:
    h = History()
    h.create()
    h.batch(["a", "b"], ["msg_0000000001", "msg_0000000002"])
    h.ops[-1].body["messages"][0]["timestamp"] = "2026-01-01T00:00:00.001Z"
    h.ops[-1].body["messages"][1]["timestamp"] = "2026-01-01T00:00:00.002Z"
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert "batch-timestamps-differ" in kinds(h, stored)


def test_a_replay_answers_what_the_first_answer_did() -> None:
    h = History()
    h.create()
    first = h.batch(["a", "b"], ["msg_0000000001", "msg_0000000002"])
    again = h.batch(["a", "b"], ["msg_0000000003", "msg_0000000004"])
    again.args["replay_of"] = first.index
    stored = final(("msg_0000000001", "a"), ("msg_0000000002", "b"))
    assert "replay-differs" in kinds(h, stored)
    again.status, again.body = 412, {"code": "precondition_failed"}
    assert "replay-refused" in kinds(h, stored)
    # A rewind between them removed the batch: the replay stores it anew.
    again.status, again.body = 201, {"messages": [message("msg_0000000003", "a"),
                                                 message("msg_0000000004", "b")]}  # fmt: skip
    first.body = {"messages": [message("msg_0000000001", "a"), message("msg_0000000002", "b")]}
    rewind = h.rewind("msg_0000000000")
    rewind.start = first.end
    anew = final(("msg_0000000003", "a"), ("msg_0000000004", "b"))
    assert not kinds(h, anew) & {"replay-differs", "replay-refused", "append-moved",
                                 "append-lost", "rewound-read"}  # fmt: skip
    # Or, the key forgotten, the replay is a new write its stale If-Match refuses
    # (cluster soak seed 741 did this to a single append).
    again.status, again.body = 412, {"code": "precondition_failed"}
    assert "replay-refused" not in kinds(h, final())
