"""ETags and conditional requests (issue 14): one ETag per session state, a separate
one for the messages collection, 304 on unchanged reads, 412 on stale writes, the
check and the write in one atomic step.

Like all of tests/api, it runs with the fast path on and off (tests/api/conftest.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import create_session, user
from tests.helpers import API, SESSION_WRITES


def _h(**extra: str) -> dict[str, str]:
    return user(**extra)


async def _etag(client: httpx.AsyncClient, sid: str) -> str:
    response = await client.get(f"{API}/{sid}", headers=_h())
    assert response.status_code == 200
    return response.headers["etag"]


async def _messages_etag(client: httpx.AsyncClient, sid: str) -> str:
    response = await client.get(f"{API}/{sid}/messages", headers=_h())
    assert response.status_code == 200
    return response.headers["etag"]


async def _append(client: httpx.AsyncClient, sid: str, **headers: str) -> httpx.Response:
    return await client.post(
        f"{API}/{sid}/messages", json={"role": "user", "content": "hi"}, headers=_h(**headers)
    )


def _failed(response: httpx.Response, current: str) -> None:
    assert response.status_code == 412, response.text
    assert response.json()["code"] == "precondition_failed"
    assert response.headers["etag"] == current
    assert response.json()["etag"] == current


async def test_every_response_about_a_session_carries_the_same_etag_for_the_same_state(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(API, json={"title": "t"}, headers=_h())
    sid, tags = created.json()["session_id"], [created.headers["etag"]]
    assert await _etag(client, sid) == tags[-1]
    assert (await client.head(f"{API}/{sid}", headers=_h())).headers["etag"] == tags[-1]
    assert (await client.get(f"{API}/{sid}?include_messages=true", headers=_h())).headers[
        "etag"
    ] == tags[-1]

    steps: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{API}/{sid}/heartbeat", None),
        ("PATCH", f"{API}/{sid}", {"title": "u"}),
        ("PUT", f"{API}/{sid}", {"context": {"k": 1}}),
        ("POST", f"{API}/{sid}/cleanup", None),
        ("POST", f"{API}/{sid}/archive", None),
        ("POST", f"{API}/{sid}/restore", None),
    ]
    for method, path, body in steps:
        response = await client.request(method, path, json=body, headers=_h())
        assert response.status_code == 200, response.text
        tag = response.headers["etag"]
        assert tag not in tags, f"{method} {path} changed the session but not its ETag"
        assert await _etag(client, sid) == tag, f"GET disagrees with {method} {path}"
        head = await client.head(f"{API}/{sid}", headers=_h())
        assert head.headers["etag"] == tag, f"HEAD disagrees with {method} {path}"
        tags.append(tag)

    # A heartbeat on the fast path moves the ETag too; a write that changes nothing does not.
    beat = await client.post(f"{API}/{sid}/heartbeat", headers=_h())
    assert beat.headers["etag"] not in tags
    await client.post(f"{API}/{sid}/archive", headers=_h())
    archived = await _etag(client, sid)
    again = await client.post(f"{API}/{sid}/archive", headers=_h())
    assert again.headers["etag"] == archived == await _etag(client, sid)
    assert (await client.post(f"{API}/{sid}/heartbeat", headers=_h())).headers["etag"] == archived


async def test_resuming_by_client_id_moves_the_etag(client: httpx.AsyncClient) -> None:
    first = await client.post(API, json={"client_id": "tab-1"}, headers=_h())
    resumed = await client.post(API, json={"client_id": "tab-1"}, headers=_h())
    assert resumed.status_code == 200
    assert resumed.headers["etag"] != first.headers["etag"]
    assert resumed.headers["etag"] == await _etag(client, resumed.json()["session_id"])


async def test_the_messages_etag_moves_only_with_the_messages(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    before = await _messages_etag(client, sid)
    await client.post(f"{API}/{sid}/heartbeat", headers=_h())
    await client.patch(f"{API}/{sid}", json={"title": "x", "metadata": {"a": 1}}, headers=_h())
    assert await _messages_etag(client, sid) == before

    session_before = await _etag(client, sid)
    appended = await _append(client, sid)
    assert appended.status_code == 201
    after = appended.headers["etag"]
    assert after != before
    assert await _messages_etag(client, sid) == after
    assert await _etag(client, sid) != session_before, "message_count changed: a new ETag"
    page = await client.get(f"{API}/{sid}/messages?order=asc&limit=1", headers=_h())
    assert page.headers["etag"] == after, "one ETag for the collection, whatever the page"


async def test_if_none_match_answers_304_without_a_body(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    tag = await _etag(client, sid)
    for value in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
        response = await client.get(f"{API}/{sid}", headers=_h(**{"If-None-Match": value}))
        assert response.status_code == 304, value
        assert response.content == b""
        assert response.headers["etag"] == tag
    for value in (tag, f"W/{tag}", "*"):
        head = await client.head(f"{API}/{sid}", headers=_h(**{"If-None-Match": value}))
        assert head.status_code == 304, value
        assert head.headers["etag"] == tag
    await client.post(f"{API}/{sid}/heartbeat", headers=_h())
    head = await client.head(f"{API}/{sid}", headers=_h(**{"If-None-Match": tag}))
    assert head.status_code == 200
    assert head.headers["etag"] != tag
    changed = await client.get(f"{API}/{sid}", headers=_h(**{"If-None-Match": tag}))
    assert changed.status_code == 200
    assert changed.json()["session_id"] == sid
    assert changed.headers["etag"] != tag

    messages_tag = await _messages_etag(client, sid)
    unchanged = await client.get(
        f"{API}/{sid}/messages", headers=_h(**{"If-None-Match": messages_tag})
    )
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    await _append(client, sid)
    moved = await client.get(f"{API}/{sid}/messages", headers=_h(**{"If-None-Match": messages_tag}))
    assert moved.status_code == 200
    assert moved.json()["total"] == 1


async def test_if_none_match_on_a_missing_session_is_404(client: httpx.AsyncClient) -> None:
    missing = f"{API}/sess_{'0' * 32}"
    for path in (missing, f"{missing}/messages"):
        response = await client.get(path, headers=_h(**{"If-None-Match": "*"}))
        assert response.status_code == 404
    head = await client.head(missing, headers=_h(**{"If-None-Match": "*"}))
    assert head.status_code == 404


@pytest.mark.parametrize(("method", "suffix", "body", "ok"), SESSION_WRITES)
async def test_session_writes_honour_if_match(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None, ok: int
) -> None:
    sid = (await create_session(client, title="old"))["session_id"]
    await client.patch(f"{API}/{sid}", json={"context": {"k": 1}}, headers=_h())
    stale = await _etag(client, sid)
    await client.post(f"{API}/{sid}/heartbeat", headers=_h())
    current = await _etag(client, sid)
    path = f"{API}/{sid}{suffix}"

    for value in (stale, f"W/{current}", '"garbage"', "not even a tag"):
        refused = await client.request(method, path, json=body, headers=_h(**{"If-Match": value}))
        _failed(refused, current)
    assert await _etag(client, sid) == current, "a refused write wrote nothing"

    done = await client.request(
        method, path, json=body, headers=_h(**{"If-Match": f'"other", {current}'})
    )
    assert done.status_code == ok, done.text
    if ok == 204:
        assert (await client.get(f"{API}/{sid}", headers=_h())).status_code == 404
    else:
        assert done.headers["etag"] == await _etag(client, sid) != current


async def test_restore_honours_if_match(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    stale = await _etag(client, sid)
    archived = (await client.post(f"{API}/{sid}/archive", headers=_h())).headers["etag"]
    _failed(await client.post(f"{API}/{sid}/restore", headers=_h(**{"If-Match": stale})), archived)
    done = await client.post(f"{API}/{sid}/restore", headers=_h(**{"If-Match": archived}))
    assert done.status_code == 200
    assert done.json()["status"] == "active"


async def test_append_compares_the_messages_etag_so_a_heartbeat_does_not_stop_it(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    tag = await _messages_etag(client, sid)
    await client.post(f"{API}/{sid}/heartbeat", headers=_h())
    await client.patch(f"{API}/{sid}", json={"title": "renamed"}, headers=_h())
    first = await _append(client, sid, **{"If-Match": tag})
    assert first.status_code == 201, first.text
    _failed(await _append(client, sid, **{"If-Match": tag}), first.headers["etag"])
    session_tag = await _etag(client, sid)
    _failed(await _append(client, sid, **{"If-Match": session_tag}), first.headers["etag"])
    second = await _append(client, sid, **{"If-Match": first.headers["etag"]})
    assert second.status_code == 201
    assert second.json()["message"]["message_id"] == "msg_0000000002"
    star = await _append(client, sid, **{"If-Match": "*"})
    assert star.status_code == 201


async def test_a_retried_conditional_append_replays_instead_of_failing(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    tag = await _messages_etag(client, sid)
    headers = {"If-Match": tag, "Idempotency-Key": "turn-1"}
    first = await _append(client, sid, **headers)
    retry = await _append(client, sid, **headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json()["message"] == first.json()["message"]
    assert (await client.get(f"{API}/{sid}", headers=_h())).json()["message_count"] == 1
    other = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "user", "content": "different"},
        headers=_h(**headers),
    )
    _failed(other, first.headers["etag"])  # 412 comes before idempotency_key_reused (422)


async def test_error_order_is_identity_404_412_then_the_request(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    stale = await _messages_etag(client, sid)
    current = (await _append(client, sid)).headers["etag"]
    bad_body = {"role": "wizard", "content": ""}
    missing = f"sess_{'0' * 32}"

    no_user = await client.post(
        f"{API}/{missing}/messages", json=bad_body, headers={"If-Match": stale}
    )
    assert no_user.status_code == 401
    unknown = await client.post(
        f"{API}/{missing}/messages", json=bad_body, headers=_h(**{"If-Match": stale})
    )
    assert unknown.status_code == 404
    star_unknown = await _append(client, missing, **{"If-Match": "*"})
    assert star_unknown.status_code == 404
    invalid_stale = await client.post(
        f"{API}/{sid}/messages", json=bad_body, headers=_h(**{"If-Match": stale})
    )
    _failed(invalid_stale, current)
    invalid_current = await client.post(
        f"{API}/{sid}/messages", json=bad_body, headers=_h(**{"If-Match": current})
    )
    assert invalid_current.status_code == 422
    huge = await client.post(
        f"{API}/{sid}/messages",
        json={"role": "user", "content": "x" * 200_000},
        headers=_h(**{"If-Match": stale}),
    )
    _failed(huge, current)

    session_tag = await _etag(client, sid)
    await client.post(f"{API}/{sid}/archive", headers=_h())
    archived_tag = await _etag(client, sid)
    _failed(await _append(client, sid, **{"If-Match": stale}), current)
    archived = await _append(client, sid, **{"If-Match": current})
    assert archived.status_code == 409
    assert archived.json()["code"] == "session_archived"
    patch = await client.patch(
        f"{API}/{sid}", json={"title": 5}, headers=_h(**{"If-Match": session_tag})
    )
    _failed(patch, archived_tag)
    conflict = await client.patch(
        f"{API}/{sid}", json={"title": "x"}, headers=_h(**{"If-Match": archived_tag})
    )
    assert conflict.status_code == 409


async def test_of_32_concurrent_appends_with_one_etag_exactly_one_succeeds(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await _append(client, sid)
    tag = await _messages_etag(client, sid)

    async def attempt(i: int) -> httpx.Response:
        return await client.post(
            f"{API}/{sid}/messages",
            json={"role": "assistant", "content": f"reply {i}"},
            headers=_h(**{"If-Match": tag}),
        )

    responses = await asyncio.gather(*(attempt(i) for i in range(32)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [412] * 31, codes
    winner = next(r for r in responses if r.status_code == 201)
    assert {r.headers["etag"] for r in responses} == {winner.headers["etag"]}
    session = (await client.get(f"{API}/{sid}", headers=_h())).json()
    assert session["message_count"] == 2


async def test_a_summary_moves_the_messages_etag_and_honours_if_match(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await _append(client, sid)
    before = await _messages_etag(client, sid)
    session_before = await _etag(client, sid)
    body = {"content": "the user said hi", "covers_through": "msg_0000000001"}

    await _append(client, sid)
    stale = await client.post(
        f"{API}/{sid}/summaries", json=body, headers=_h(**{"If-Match": before})
    )
    current = await _messages_etag(client, sid)
    _failed(stale, current)
    bad = await client.post(
        f"{API}/{sid}/summaries", json={"covers_through": 7}, headers=_h(**{"If-Match": before})
    )
    _failed(bad, current)  # 412 before the 422 of the body
    stored = await client.post(
        f"{API}/{sid}/summaries", json=body, headers=_h(**{"If-Match": current})
    )
    assert stored.status_code == 201, stored.text
    after = stored.headers["etag"]
    assert after != current
    assert await _messages_etag(client, sid) == after
    assert await _etag(client, sid) != session_before
    # An append prepared before the summary is refused: the conversation moved on.
    _failed(await _append(client, sid, **{"If-Match": current}), after)
    assert (await _append(client, sid, **{"If-Match": after})).status_code == 201


@pytest.mark.parametrize("endpoint", ["messages", "summaries"])
async def test_a_stale_if_match_is_412_before_a_malformed_idempotency_key(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    sid = (await create_session(client))["session_id"]
    stale = await _messages_etag(client, sid)
    current = (await _append(client, sid)).headers["etag"]
    body: dict[str, str] = {"role": "user", "content": "x"}
    if endpoint == "summaries":
        body = {"content": "x", "covers_through": "msg_0000000001"}
    bad_key = {"Idempotency-Key": "k" * 300}

    refused = await client.post(
        f"{API}/{sid}/{endpoint}", json=body, headers=_h(**{"If-Match": stale, **bad_key})
    )
    _failed(refused, current)
    invalid = await client.post(
        f"{API}/{sid}/{endpoint}", json=body, headers=_h(**{"If-Match": current, **bad_key})
    )
    assert (invalid.status_code, invalid.json()["field"]) == (422, "Idempotency-Key")
    assert await _messages_etag(client, sid) == current


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/messages", "m"),
        ("POST", "/summaries", "m"),
        ("POST", "/rewind", "m"),
        ("PATCH", "", "s"),
        ("PUT", "", "s"),
    ],
)
async def test_a_stale_if_match_is_412_before_an_unparsable_json_body(
    client: httpx.AsyncClient, method: str, path: str, kind: str
) -> None:
    # FastAPI refuses a body it cannot parse before any dependency runs.
    sid = (await create_session(client))["session_id"]
    stale = await _messages_etag(client, sid) if kind == "m" else await _etag(client, sid)
    await _append(client, sid)
    current = await _messages_etag(client, sid) if kind == "m" else await _etag(client, sid)
    headers = _h(**{"Content-Type": "application/json"})

    refused = await client.request(
        method, f"{API}/{sid}{path}", content=b"{bad", headers={**headers, "If-Match": stale}
    )
    _failed(refused, current)
    invalid = await client.request(
        method, f"{API}/{sid}{path}", content=b"{bad", headers={**headers, "If-Match": current}
    )
    assert (invalid.status_code, invalid.json()["code"]) == (422, "validation_error")
    unconditional = await client.request(
        method, f"{API}/{sid}{path}", content=b"{bad", headers=headers
    )
    assert unconditional.status_code == 422
