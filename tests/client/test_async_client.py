"""The async client against the real service: the same surface, awaited."""

from __future__ import annotations

import pytest

from fm_session_client import AsyncSessionClient, errors


async def test_async_round_trip(aclient: AsyncSessionClient) -> None:
    created = await aclient.create_session(title="async", client_id="ext-1")
    sid = created.session_id
    again = await aclient.resume_or_create("ext-1")
    assert again.session_resumed and again.session_id == sid
    for n in range(5):
        await aclient.append(sid, "user" if n % 2 == 0 else "assistant", f"line {n}")
    contents = [m.content async for m in aclient.iter_messages(sid, page_size=2)]
    assert contents == [f"line {n}" for n in range(5)]
    newest = [m.content async for m in aclient.iter_messages(sid, order="desc", page_size=2)]
    assert newest == contents[::-1]
    summary = await aclient.create_summary(sid, "lines 0-2", "msg_0000000003")
    assert [s.summary_id async for s in aclient.iter_summaries(sid)] == [summary.summary_id]
    window = await aclient.window(sid, max_tokens=1000)
    assert window.summary is not None and [m.content for m in window.messages] == [
        "line 3",
        "line 4",
    ]
    fork = await aclient.fork(sid)
    assert [s.session_id async for s in aclient.iter_sessions()] == [fork.session_id, sid]
    current = await aclient.head_session(sid)
    assert current is not None
    updated = await aclient.update(sid, metadata={"k": "v"}, if_match=current)
    with pytest.raises(errors.PreconditionFailed) as stale:
        await aclient.update(sid, metadata={"k": "w"}, if_match=current)
    assert stale.value.etag == updated.etag
    rewound = await aclient.rewind(sid, "msg_0000000000")
    assert rewound.removed == 5 and rewound.last_message_id is None
    await aclient.delete_session(sid)
    with pytest.raises(errors.SessionNotFound):
        await aclient.append(sid, "user", "too late")
