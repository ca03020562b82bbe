"""The sync client against the real service: every endpoint, its answer typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fm_session_client import SessionClient, errors
from fm_session_client.models import MessageCreate, ToolCall
from tests.ops.service import ServiceProcess, running_service
from tests.servers import RedisProcess


def test_service_endpoints(client: SessionClient) -> None:
    assert client.health().status == "ok"
    assert client.ready().status == "ready"
    assert client.service_info().service
    assert "fm_session" in client.metrics() or "# HELP" in client.metrics()


def test_session_lifecycle(client: SessionClient, user_id: str) -> None:
    created = client.create_session(title="Disk full", metadata={"team": "sre"})
    assert created.user_id == user_id and created.status == "active"
    assert not created.session_resumed and created.etag
    sid = created.session_id

    assert client.head_session(sid) == created.etag
    assert client.head_session(sid, if_none_match=created.etag) is None
    assert client.head_session(sid, if_match=created.etag) == created.etag
    got = client.get_session(sid)
    assert got is not None and got.title == "Disk full"
    assert client.get_session(sid, if_none_match=created.etag) is None

    updated = client.update(sid, description="df says 100%", if_match=created.etag)
    assert updated.description == "df says 100%" and updated.etag != created.etag
    with pytest.raises(errors.PreconditionFailed) as stale:
        client.update(sid, title="lost update", if_match=created.etag)
    assert stale.value.etag == updated.etag
    with pytest.raises(errors.PreconditionFailed) as head_stale:
        client.head_session(sid, if_match=created.etag)
    assert head_stale.value.etag == updated.etag
    with pytest.raises(errors.PreconditionFailed):  # If-None-Match on a write: "not this one"
        client.update(sid, title="only if changed", if_none_match=updated.etag)
    with pytest.raises(errors.PreconditionFailed):  # If-Match on a read
        client.get_session(sid, if_match=created.etag)
    cleared = client.update(sid, title=None)
    assert cleared.title is None and cleared.description == "df says 100%"

    assert client.heartbeat(sid).session_id == sid
    assert client.recovery_info(sid).recovery_info.can_resume
    client.update(sid, context={"step": 1})
    assert client.clear_context(sid).cleared_keys == ["step"]
    assert client.archive(sid).status == "archived"
    with pytest.raises(errors.SessionArchived):
        client.append(sid, "user", "read-only now")
    assert client.restore(sid).status == "active"
    assert client.statistics().total_sessions == 1
    assert client.list_sessions().total == 1

    client.delete_session(sid)
    with pytest.raises(errors.SessionNotFound) as gone:
        client.get_session(sid)
    assert gone.value.status == 404 and gone.value.error_code == "session_not_found"
    with pytest.raises(errors.SessionNotFound):
        client.head_session(sid)


def test_messages_tools_and_pages(client: SessionClient) -> None:
    sid = client.create_session().session_id
    first = client.append(sid, "user", "what fills /var?")
    assert first.message.message_id == "msg_0000000001" and first.etag
    call = ToolCall(id="call_1", name="du", arguments={"path": "/var"})
    asked = client.append(sid, "assistant", tool_calls=[call], if_match=first.etag)
    assert asked.message.tool_calls is not None
    assert asked.message.tool_calls[0].arguments == {"path": "/var"}
    client.append(sid, "tool", "/var/log 9G", tool_call_id="call_1")
    with pytest.raises(errors.ToolCallAlreadyAnswered):
        client.append(sid, "tool", "again", tool_call_id="call_1")
    with pytest.raises(errors.UnknownToolCall):
        client.append(sid, "tool", "who asked?", tool_call_id="call_404")
    with pytest.raises(errors.PreconditionFailed):
        client.append(sid, "user", "stale", if_match=first.etag)
    with pytest.raises(errors.PreconditionFailed):
        client.list_messages(sid, if_match=first.etag)
    for n in range(7):
        client.append(sid, "user", f"note {n}")

    forward = [m.message_id for m in client.iter_messages(sid, page_size=3)]
    assert forward == [f"msg_{n:010d}" for n in range(1, 11)]
    backward = [m.message_id for m in client.iter_messages(sid, order="desc", page_size=4)]
    assert backward == forward[::-1]
    page = client.list_messages(sid, limit=2)
    assert page is not None and page.total == 10 and page.has_more
    assert client.list_messages(sid, if_none_match=page.etag) is None
    assert client.get_message(sid, "msg_0000000003").role == "tool"
    with pytest.raises(errors.MessageNotFound):
        client.get_message(sid, "msg_0000000099")
    assert client.stats(sid).tool_message_count == 1
    exported = client.export(sid)
    assert exported.messages is not None and len(exported.messages) == 10
    assert "/var/log 9G" in client.export_markdown(sid)


def test_window_summaries_fork_rewind(client: SessionClient) -> None:
    sid = client.create_session().session_id
    for n in range(6):
        client.append(sid, "user" if n % 2 == 0 else "assistant", f"turn {n}", token_count=10)
    summary = client.create_summary(sid, "turns 0-3 in short", "msg_0000000004", token_count=5)
    assert summary.summary_id == "sum_0000000001"
    with pytest.raises(errors.UnknownMessage):
        client.create_summary(sid, "ahead of time", "msg_0000000099")
    window = client.window(sid, max_tokens=25)
    assert window.summary is not None and window.summary.summary_id == summary.summary_id
    assert [m.content for m in window.messages] == ["turn 4", "turn 5"]
    second = client.create_summary(sid, "turns 0-5 in short", "msg_0000000006")
    assert [s.summary_id for s in client.iter_summaries(sid, page_size=1)] == [
        second.summary_id,
        summary.summary_id,
    ]
    with pytest.raises(errors.SummaryOutOfOrder):
        client.create_summary(sid, "too late", "msg_0000000002")

    fork = client.fork(sid, through_message_id="msg_0000000002", title="branch")
    assert fork.forked_from is not None and fork.forked_from.session_id == sid
    assert [m.content for m in client.iter_messages(fork.session_id)] == ["turn 0", "turn 1"]

    rewound = client.rewind(sid, "msg_0000000003")
    assert rewound.removed == 3 and rewound.last_message_id == "msg_0000000003"
    assert client.get_session(sid) is not None
    assert [m.message_id for m in client.iter_messages(sid)][-1] == "msg_0000000003"


def test_search_iterators_and_resume(client: SessionClient) -> None:
    ids = {client.create_session(title=f"probe {n}").session_id for n in range(7)}
    other = client.create_session(title="unrelated")
    found = [s.session_id for s in client.iter_search(query="probe", page_size=2)]
    assert sorted(found) == sorted(ids)
    every = [s.session_id for s in client.iter_sessions(page_size=3)]
    assert sorted(every) == sorted([*ids, other.session_id])
    assert client.search(query="probe", limit=3).total == 7

    first = client.resume_or_create("browser-tab-1", title="from the extension")
    again = client.resume_or_create("browser-tab-1")
    assert not first.session_resumed and again.session_resumed
    assert again.session_id == first.session_id
    client.delete_session(first.session_id)
    fresh = client.resume_or_create("browser-tab-1")
    assert not fresh.session_resumed and fresh.session_id != first.session_id

    assert client.delete_all_sessions().deleted == 9


def test_cases_and_admin(service: ServiceProcess, client: SessionClient, user_id: str) -> None:
    sid = client.create_session().session_id
    linked = client.link_case(sid, "case-42")
    assert linked.linked and linked.case_id == "case-42"
    cases = client.list_cases(sid)
    assert [c.case_id for c in cases.cases] == ["case-42"]
    client.unlink_case(sid, "case-42")
    assert client.list_cases(sid).total == 0
    assert client.cleanup().scanned >= 0
    with pytest.raises(errors.Forbidden):
        client.erase_user(user_id)
    with SessionClient(service.url, user_id="ops", user_roles=["admin"]) as admin:
        report = admin.erase_user(user_id)
    assert report.deleted_sessions == 1
    with pytest.raises(errors.SessionNotFound):
        client.get_session(sid)


def test_errors_by_code(service: ServiceProcess) -> None:
    with SessionClient(service.url) as anonymous, pytest.raises(errors.MissingIdentity) as missing:
        anonymous.list_sessions()
    assert missing.value.status == 401
    with (
        SessionClient(service.url, user_id="u" * 300) as bad,
        pytest.raises(errors.InvalidIdentity) as invalid,
    ):
        bad.list_sessions()
    assert invalid.value.status == 400 and invalid.value.detail


def test_idempotency_key_replays_and_refuses_reuse(client: SessionClient) -> None:
    sid = client.create_session().session_id
    one = client.append(sid, "user", "once", idempotency_key="k-1")
    two = client.append(sid, "user", "once", idempotency_key="k-1")
    assert one.message.message_id == two.message.message_id and two.total_messages == 1
    with pytest.raises(errors.IdempotencyKeyReused):
        client.append(sid, "user", "something else", idempotency_key="k-1")


def test_batch_append(client: SessionClient) -> None:
    sid = client.create_session().session_id
    turn = [
        MessageCreate(role="user", content="restart nginx"),
        MessageCreate(
            role="assistant", tool_calls=[ToolCall(id="c1", name="restart", arguments="nginx")]
        ),
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
        {"role": "assistant", "content": "done"},
    ]
    stored = client.append_batch(sid, turn, idempotency_key="turn-1")
    assert [m.message_id for m in stored.messages] == [f"msg_{n:010d}" for n in range(1, 5)]
    assert stored.etag
    replay = client.append_batch(sid, turn, idempotency_key="turn-1")
    assert replay.messages == stored.messages
    with pytest.raises(errors.ApiError) as bad:
        client.append_batch(
            sid,
            [
                {"role": "user", "content": "fine"},
                {"role": "tool", "content": "x", "tool_call_id": "nope"},
            ],
        )
    assert bad.value.index == 1
    assert client.stats(sid).message_count == 4


def test_gateway_token(redis_process: RedisProcess, workdir: Path) -> None:
    """With GATEWAY_SHARED_SECRET set, the client's `gateway_token` is what lets it in."""
    with running_service(
        workdir, "serve", REDIS_URL=redis_process.url, GATEWAY_SHARED_SECRET="s3cret-token"
    ) as gated:
        with (
            SessionClient(gated.url, user_id="g1") as untrusted,
            pytest.raises(errors.UntrustedCaller),
        ):
            untrusted.create_session()
        with SessionClient(gated.url, user_id="g1", gateway_token="s3cret-token") as trusted:
            assert trusted.create_session().user_id == "g1"
