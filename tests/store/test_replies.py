"""The contract between the Lua scripts and Python, the other way: the replies.

Every script's replies are declared once, as the shapes its codec names
(store/replies.py), and decoded strictly, so every test that goes through the store
holds the scripts' actual replies to them. These tests add:

- the tags a script's source can answer are exactly the tags its shapes declare;
- on a real server, every declared shape of every script is answered and decodes
  (one scenario drives each script down each of its reply paths);
- the decoding is strict (arity, kinds, tags), maps refusals onto the error tree,
  and never puts a reply's values in its error message.
"""

from __future__ import annotations

import re
from dataclasses import replace
from importlib import resources
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

import session_legacy.codecs  # noqa: F401  (its codecs register the import's scripts)
from session_legacy import writer as importing
from session_service import errors
from session_service.domain.ids import new_session_id
from session_service.store import protocol
from session_service.store.branches import INLINE_MAX
from session_service.store.codec import dump_json, encode_cursor
from session_service.store.keys import digest
from session_service.store.protocol import (
    CopyArgs,
    CreateArgs,
    ForkArgs,
    HeartbeatArgs,
    RewindSwapArgs,
)
from session_service.store.records import NewMessage, NewSession, SearchFilters
from session_service.store.replies import AppendOk, SessionPage, Statistics
from session_service.store.reply_decoding import (
    Entry,
    Refusal,
    Replies,
    ReplyMismatch,
)
from session_service.store.sessions import SessionStore
from tests.legacy import legacy

HOUR = 3_600_000
TAG = re.compile(r"(?:\breturn|\b(?:out|reply)\s*=)\s*\{\s*'(\w+)'")


def _lua(name: str) -> str:
    package = protocol.CODECS[name].lua_package
    source = resources.files(package).joinpath("lua", f"{name}.lua").read_text()
    return re.sub(r"--[^\n]*", "", source)


@pytest.mark.parametrize("name", sorted(protocol.CODECS))
def test_the_tags_a_script_answers_are_the_tags_its_shapes_declare(name: str) -> None:
    source = _lua(name)
    answered = set(TAG.findall(source)) | ({"replay"} if "replay(" in source else set())
    declared = set(protocol.REPLIES[name].tagged) - {"err"}
    assert answered - {"err"} == declared, f"{name}.lua and its declared reply shapes differ"


def test_a_codec_must_declare_its_replies() -> None:
    from dataclasses import dataclass

    with pytest.raises(TypeError, match="must declare its replies"):

        @dataclass(frozen=True, slots=True, kw_only=True)
        class UndeclaredArgs(protocol.ScriptArgs):  # type: ignore[type-arg]
            script = "undeclared_only_in_this_test"

    assert "undeclared_only_in_this_test" not in protocol.CODECS


# ---- every declared shape, answered by its script on a real server ---------------


class _Recorder:
    """Wraps a script's decoder: notes the shape of every reply it decodes."""

    def __init__(self, name: str, decode: Replies[Any], seen: set[tuple[str, Any]]) -> None:
        self.name, self.decode, self.seen = name, decode, seen
        self.shapes = decode.shapes

    def __call__(self, raw: Any, target_status: str | None = None) -> Any:
        value = self.decode(raw, target_status)
        self.seen.add((self.name, type(value)))
        return value


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, Any]]:
    shapes: set[tuple[str, Any]] = set()
    for name, decode in list(protocol.REPLIES.items()):
        monkeypatch.setitem(protocol.REPLIES, name, _Recorder(name, decode, shapes))
    return shapes


def _declared() -> set[tuple[str, Any]]:
    return {(name, shape) for name in protocol.CODECS for shape in protocol.REPLIES[name].shapes}


async def _lifecycle(store: SessionStore, u: str) -> str:
    """create (created, replay, resumed), append, batch, summarize and their replays,
    the reads, the session writes; the session it leaves holds 3 messages."""
    new = NewSession.build(new_session_id(), HOUR, client_id="c1")
    sid = str((await store.create(u, new, "create-key")).session["session_id"])
    assert (await store.create(u, new, "create-key")).session["session_id"] == sid
    resumed = await store.create(u, NewSession.build(new_session_id(), HOUR, client_id="c1"))
    assert resumed.resumed
    for _ in range(2):
        await store.append(u, sid, "user", "hello", idempotency_key="append-key")
        batch = [NewMessage("assistant", "hi"), NewMessage("user", "and?")]
        await store.append_batch(u, sid, batch, "batch-key")
        await store.summarize(u, sid, "so far", 1, None, None, "summary-key")
    await store.window(u, sid, 10_000)
    await store.heartbeat(u, sid)
    await store.update(u, sid, title="shapes", context={"k": 1})
    await store.clear_context(u, sid)
    await store.link_case(u, sid, "case_1")
    await store.unlink_case(u, sid, "case_1")
    await store.list_sessions(u, ["active", "in_progress"], 0, 10)
    await store.statistics(u)
    await store.watchers(u, "open", ["w1"], 10_000, 4)
    await store.feed_state(u, sid, 0, 10)
    await store.feed_states([(u, sid, 1, 10), (u, "sess_none", 0, 10)])
    total, _, cursor = await store.search(u, SearchFilters(statuses=["in_progress"]), 1, None)
    assert total == 1 and cursor is None
    with pytest.raises(errors.SearchExpired):  # a walk whose snapshot is gone
        await store.search(u, SearchFilters(statuses=["active"]), 1, encode_cursor("ab", "1", "x"))
    return sid


async def _branches(store: SessionStore, u: str, sid: str) -> None:
    """fork (and its replays, a restart), a short and a staged rewind, a swap behind."""
    forked = await store.fork(u, sid, None, idempotency_key="fork-key")
    assert await store.fork(u, sid, None, idempotency_key="fork-key") == forked
    fingerprint = digest(dump_json(["fork", sid, None, None]))
    args = ForkArgs(
        src=sid, dst=new_session_id(), through=3, generation="0", idem=digest("fork-key"),
        fingerprint=fingerprint, idem_ttl_ms=HOUR, max_sessions=100, title_given=False,
        title="", title_folded="", counters=(),
    )  # fmt: skip
    await store._write(store.scripts.fork, u, args)  # the key's record answers: a replay
    await store._write(store.scripts.fork, u, replace(args, idem="", generation="stale"))
    copy = CopyArgs(
        src=sid, dst=new_session_id(), what="m", through=3, after=0, count=8,
        generation="stale", ttl_ms=60_000,
    )  # fmt: skip
    await store._write(store.scripts.copy, u, copy)  # rewound meanwhile: restart
    await store.rewind(u, str(forked["session_id"]), 2, "")
    # A long tail (with keyed appends, whose records the staged copy carries) is staged.
    long = (await store.fork(u, sid, None))["session_id"]
    for n in range(INLINE_MAX + 2):
        await store.append(u, str(long), "user", f"m{n}", idempotency_key=f"long-{n}")
    await store.rewind(u, str(long), 3, "")
    # More summaries to carry than one swap does: 'behind'; then a stale generation.
    for _ in range(65):
        await store.summarize(u, sid, "again", 3, None, None)
    swap = RewindSwapArgs(
        sid=sid, staging=new_session_id(), if_match="", generation="0", to=3, counters=()
    )
    await store._write(store.scripts.rewind_swap, u, swap)
    await store._write(store.scripts.rewind_swap, u, replace(swap, generation="stale"))


async def _endings(store: SessionStore, u: str, sid: str) -> None:
    """archive, restore, delete, a feed of a deleted session, prune, delete-all, erase
    (with a stray key: the create's idempotency record), and a create that must evict
    more than one step does ('again')."""
    await store.archive(u, sid)
    await store.restore(u, sid)
    await store.delete(u, sid)
    assert await store.feed_state(u, sid, 0, 10) is None
    await store.cleanup_user(u)
    await store.delete_all(u)
    await store.create(u, NewSession.build(new_session_id(), HOUR), "stray-key")
    assert await store.erase_user(u) != (0, 0)
    crowd = [NewSession.build(new_session_id(), HOUR) for _ in range(102)]
    await store.create_many(u, crowd)
    args: CreateArgs = store._create_args(NewSession.build(new_session_id(), HOUR), None)
    await store._write(store.scripts.create, u, replace(args, max_sessions=1, evict_oldest=True))


async def _import(store: SessionStore, u: str) -> None:
    """The import's scripts: staged, committed, skipped, already there, refused."""
    session = legacy(u, 3)
    assert await importing.import_session(store, session, HOUR) is None
    assert await importing.commit(store, session, HOUR) == "already imported"
    assert not await importing.stage_messages(store, session)
    gap = legacy(u, 6)
    await importing.stage_messages(store, replace(gap, messages=gap.messages[:3]))
    with pytest.raises(errors.StorageUnavailable):
        await importing.commit(store, gap, HOUR)
    args = importing.ImportStageArgs(
        sid=gap.session_id, first_seq=5, staging_ttl_ms=60_000, messages=("user", "x", "1", "", "1")
    )
    assert isinstance(await store._write(store.scripts.import_stage, u, args), Refusal)


async def test_every_declared_reply_shape_is_answered_by_its_script_and_decodes(
    client: httpx.AsyncClient, redis: Redis, seen: set[tuple[str, Any]]
) -> None:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    sid = await _lifecycle(store, "u-shapes")
    await _branches(store, "u-shapes", sid)
    await _endings(store, "u-shapes", sid)
    await _import(store, "u-import")
    missing = sorted(f"{name}: {shape.__name__}" for name, shape in _declared() - seen)
    assert missing == [], "declared reply shapes no script answered in this scenario"
    assert seen <= _declared()


# ---- strict decoding ------------------------------------------------------------

APPEND = protocol.REPLIES["append"]
OK = ["ok", 7, 1_700_000_000_000, 7, "in_progress", '"1.m7"']


def test_a_reply_decodes_into_named_fields() -> None:
    reply = APPEND(OK)
    assert reply == AppendOk("ok", 7, 1_700_000_000_000, 7, "in_progress", '"1.m7"')
    assert (reply.seq, reply.messages, reply.etag) == (7, 7, '"1.m7"')


@pytest.mark.parametrize(
    "raw",
    [
        OK[:-1],  # a slot short
        [*OK, "extra"],  # a slot too many
        ["ok", "seven", *OK[2:]],  # not an integer
        ["ok", 7, 1, 7, 8, '"1.m7"'],  # a number where a string is declared
        ["okay", *OK[1:]],  # a tag no shape declares
        [7, *OK[1:]],  # untagged, and the script declares no untagged shape
        "ok",  # not a list
        [],
    ],
)
def test_a_reply_outside_its_declared_shapes_raises(raw: Any) -> None:
    with pytest.raises(ReplyMismatch, match=r"append\.lua answered"):
        APPEND(raw)


def test_a_mismatch_names_the_slot_and_never_a_value() -> None:
    with pytest.raises(ReplyMismatch) as raised:
        APPEND(["ok", 7, 1, 7, "in_progress", ["secret message content"]])
    assert "'etag'" in str(raised.value)
    assert "secret" not in str(raised.value)


def test_defaults_and_rest_slots() -> None:
    create = protocol.REPLIES["create"]
    resumed = create(["resumed", "sess_a", ["st", "active"], 0])
    assert resumed.evicted == () and resumed.fields == {"st": "active"}
    page: SessionPage = protocol.REPLIES["list"]([2, 0, "a", ["st", "x"], "b", []])
    assert [(r.session_id, r.fields) for r in page.rows] == [("a", {"st": "x"}), ("b", {})]
    with pytest.raises(ReplyMismatch, match="slots"):
        protocol.REPLIES["list"]([2, 0, "a"])  # half a row
    stats: Statistics = protocol.REPLIES["statistics"]([0, 0, "5", "active", 1, "", ""])
    assert stats.messages == 5 and stats.statuses[0].oldest is None
    window = protocol.REPLIES["window"](["ok", [], 0, 0, ["0-1", ["r", "user"]]])
    assert window.summary is None and window.messages == (Entry("0-1", ["r", "user"]),)


@pytest.mark.parametrize(
    ("raw", "error", "detail"),
    [
        (["err", "session_not_found"], errors.SessionNotFound, None),
        (["err", "precondition_failed", '"1.m2"'], errors.PreconditionFailed, None),
        (["err", "session_full", "", 3], errors.SessionFull, "messages[3]: "),
    ],
)
def test_a_refusal_raises_the_error_it_stands_for(
    raw: list[Any], error: type[errors.ServiceError], detail: str | None
) -> None:
    with pytest.raises(error) as raised:
        protocol.REPLIES["append_batch"](raw)
    if detail is not None:
        assert raised.value.detail.startswith(detail)
        assert raised.value.extra["index"] == 3


def test_update_completes_an_invalid_transition_with_its_target() -> None:
    with pytest.raises(errors.InvalidStatusTransition) as raised:
        protocol.REPLIES["update"](["err", "invalid_status_transition", "archived"], "active")
    assert "active" in raised.value.detail and "archived" in raised.value.detail


def test_a_codec_that_takes_refusals_as_values_gets_them() -> None:
    refusal = protocol.REPLIES["import_stage"](["err", "import_gap", "6"])
    assert refusal == Refusal("err", "import_gap", "6")


def test_a_scalar_reply() -> None:
    assert protocol.REPLIES["erase_strays"](3) == 3
    with pytest.raises(ReplyMismatch):
        protocol.REPLIES["erase_strays"](["ok"])


def test_a_shape_must_be_decodable_when_declared() -> None:
    from typing import NamedTuple

    class Odd(NamedTuple):
        tag: str
        value: complex

    with pytest.raises(TypeError, match="no reply decoding"):
        Replies("odd_only_in_this_test", Odd)


def test_decode_is_the_codecs_own() -> None:
    reply = HeartbeatArgs(sid="sess_x").decode(["ok", "active", 1, 2, '"1.s1"'])
    assert (reply.status, reply.last_activity_ms, reply.expires_ms) == ("active", 1, 2)
