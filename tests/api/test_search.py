"""POST /api/v1/sessions/search (issue 4, item 6)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import create_session, user
from tests.helpers import API

SEARCH = "/api/v1/sessions/search"


async def _search(client: httpx.AsyncClient, user_id: str = "u1", **body: Any) -> dict[str, Any]:
    response = await client.post(SEARCH, json=body, headers=user(user_id))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _ids(client: httpx.AsyncClient, **body: Any) -> set[str]:
    return {s["session_id"] for s in (await _search(client, **body))["sessions"]}


async def _set_status(client: httpx.AsyncClient, sid: str, status: str) -> None:
    response = await client.patch(f"{API}/{sid}", json={"status": status}, headers=user())
    assert response.status_code == 200, response.text


async def test_an_empty_search_returns_every_live_session_with_the_result_shape(
    client: httpx.AsyncClient,
) -> None:
    a = await create_session(client, title="a")
    b = await create_session(client)
    body = await _search(client)
    assert set(body) == {"sessions", "total", "limit", "next_cursor"}
    assert body["total"] == 2
    assert body["limit"] == 50
    assert body["next_cursor"] is None
    assert {s["session_id"] for s in body["sessions"]} == {a["session_id"], b["session_id"]}
    full = (await client.get(f"{API}/{a['session_id']}", headers=user())).json()
    assert next(s for s in body["sessions"] if s["session_id"] == a["session_id"]) == full


async def test_results_are_most_recent_activity_first(client: httpx.AsyncClient) -> None:
    ids = [(await create_session(client, title=f"s{i}"))["session_id"] for i in range(3)]
    await asyncio.sleep(0.005)
    await client.post(f"{API}/{ids[0]}/heartbeat", headers=user())
    body = await _search(client)
    assert body["sessions"][0]["session_id"] == ids[0]


async def test_status_filter_takes_one_status_or_a_list(client: httpx.AsyncClient) -> None:
    active = (await create_session(client))["session_id"]
    done = (await create_session(client))["session_id"]
    gone = (await create_session(client))["session_id"]
    await _set_status(client, done, "completed")
    await _set_status(client, gone, "abandoned")
    assert await _ids(client, status="completed") == {done}
    assert await _ids(client, status=["active", "abandoned"]) == {active, gone}
    assert (await _search(client, status=["completed"]))["total"] == 1


async def test_query_is_a_case_insensitive_substring_of_title_or_description(
    client: httpx.AsyncClient,
) -> None:
    in_title = (await create_session(client, title="Database TIMEOUTS in prod"))["session_id"]
    in_desc = (await create_session(client, description="the timeouts again"))["session_id"]
    other = (await create_session(client, title="Memory leak"))["session_id"]
    untitled = (await create_session(client))["session_id"]
    assert await _ids(client, query="timeouts") == {in_title, in_desc}
    assert await _ids(client, query="TimeOuts") == {in_title, in_desc}
    assert await _ids(client, query="base time") == {in_title}
    assert await _ids(client, query="leak") == {other}
    assert await _ids(client, query="nothing like this") == set()
    assert untitled in await _ids(client)


async def test_query_folds_non_ascii_case(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, title="ÉCHEC du Déploiement"))["session_id"]
    assert await _ids(client, query="échec") == {sid}
    assert await _ids(client, query="DÉPLOIEMENT") == {sid}


async def test_query_matches_a_title_set_by_update(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, title="before"))["session_id"]
    await client.patch(f"{API}/{sid}", json={"title": "After Update"}, headers=user())
    assert await _ids(client, query="after") == {sid}
    assert await _ids(client, query="before") == set()


async def test_query_special_characters_are_literal(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, title="100% cpu (node-1) [x]"))["session_id"]
    await create_session(client, title="100 cpu node 1 x")
    assert await _ids(client, query="100%") == {sid}
    assert await _ids(client, query="(node-1)") == {sid}
    assert await _ids(client, query="[x]") == {sid}
    assert await _ids(client, query=".*") == set()


async def test_metadata_filter_matches_exact_values_all_keys_at_once(
    client: httpx.AsyncClient,
) -> None:
    both = await create_session(client, metadata={"env": "prod", "n": 1, "o": {"b": 2, "a": 1}})
    env_only = await create_session(client, metadata={"env": "prod", "n": 2})
    await create_session(client, metadata={"env": "staging"})
    assert await _ids(client, metadata={"env": "prod"}) == {
        both["session_id"],
        env_only["session_id"],
    }
    assert await _ids(client, metadata={"env": "prod", "n": 1}) == {both["session_id"]}
    assert await _ids(client, metadata={"o": {"a": 1, "b": 2}}) == {both["session_id"]}
    assert await _ids(client, metadata={"n": "1"}) == set()
    assert await _ids(client, metadata={"env": "Prod"}) == set()
    assert await _ids(client, metadata={"missing": "x"}) == set()


async def test_metadata_filter_sees_merged_updates(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, metadata={"env": "dev"}))["session_id"]
    await client.patch(f"{API}/{sid}", json={"metadata": {"env": "prod"}}, headers=user())
    assert await _ids(client, metadata={"env": "prod"}) == {sid}
    await client.patch(f"{API}/{sid}", json={"metadata": {"env": None}}, headers=user())
    assert await _ids(client, metadata={"env": "prod"}) == set()


async def test_session_type_filter(client: httpx.AsyncClient) -> None:
    incident = (await create_session(client, session_type="incident"))["session_id"]
    default = (await create_session(client))["session_id"]
    assert await _ids(client, session_type="incident") == {incident}
    assert await _ids(client, session_type="troubleshooting") == {default}


async def test_created_and_updated_ranges(client: httpx.AsyncClient) -> None:
    first = await create_session(client, title="first")
    await asyncio.sleep(0.01)
    second = await create_session(client, title="second")
    await asyncio.sleep(0.01)
    third = await create_session(client, title="third")
    a, b, c = first["session_id"], second["session_id"], third["session_id"]
    assert await _ids(client, created_after=first["created_at"]) == {b, c}
    assert await _ids(client, created_before=third["created_at"]) == {a, b}
    assert await _ids(
        client, created_after=first["created_at"], created_before=third["created_at"]
    ) == {b}
    await asyncio.sleep(0.01)
    touched = (
        await client.patch(f"{API}/{a}", json={"title": "first again"}, headers=user())
    ).json()
    assert await _ids(client, updated_after=third["updated_at"]) == {a}
    assert await _ids(client, updated_before=touched["updated_at"]) == {b, c}


async def test_date_filters_accept_offsets_and_the_epoch(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    assert await _ids(client, created_after="2000-01-01T00:00:00+02:00") == {sid}
    assert await _ids(client, created_before="2000-01-01T00:00:00Z") == set()
    assert await _ids(client, created_before="1970-01-01T00:00:00Z") == set()
    assert await _ids(client, updated_before="1970-01-01T00:00:00Z") == set()
    assert await _ids(client, created_after="1970-01-01T00:00:00Z") == {sid}


async def test_filters_combine(client: httpx.AsyncClient) -> None:
    target = await create_session(
        client, title="DB timeout", session_type="incident", metadata={"env": "prod"}
    )
    await create_session(client, title="DB timeout", session_type="incident")
    await create_session(client, title="DB timeout", metadata={"env": "prod"})
    await create_session(client, title="CPU", session_type="incident", metadata={"env": "prod"})
    done = await create_session(
        client, title="DB timeout", session_type="incident", metadata={"env": "prod"}
    )
    await _set_status(client, done["session_id"], "completed")
    body = await _search(
        client,
        query="timeout",
        session_type="incident",
        metadata={"env": "prod"},
        status=["active", "in_progress"],
        created_after="2000-01-01T00:00:00Z",
    )
    assert [s["session_id"] for s in body["sessions"]] == [target["session_id"]]
    assert body["total"] == 1


async def test_cursor_walks_every_match_once_in_order(client: httpx.AsyncClient) -> None:
    ids = {(await create_session(client, title=f"walk {i}"))["session_id"] for i in range(7)}
    await create_session(client, title="other")
    full = await _search(client, query="walk", limit=100)
    assert full["total"] == 7
    order = [s["session_id"] for s in full["sessions"]]
    walked: list[str] = []
    cursor = None
    pages = 0
    while True:
        body = await _search(client, query="walk", limit=3, cursor=cursor)
        assert body["total"] == 7
        assert body["limit"] == 3
        walked += [s["session_id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert walked == order
    assert set(walked) == ids


async def test_a_garbled_cursor_is_422(client: httpx.AsyncClient) -> None:
    await create_session(client)
    response = await client.post(SEARCH, json={"cursor": "%%%not-a-cursor"}, headers=user())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["field"] == "cursor"


@pytest.mark.parametrize(
    "body",
    [{"limit": 0}, {"limit": 101}, {"status": "paused"}, {"status": ["active", "x"]},
     {"unknown": 1}, {"created_after": "yesterday"}, {"metadata": "env=prod"},
     # pydantic alone would read a string of digits as a Unix time, and take a date alone.
     {"created_after": "0"}, {"updated_before": "1700000000"}, {"created_before": "2000-01-01"}],
)  # fmt: skip
async def test_invalid_search_requests_are_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post(SEARCH, json=body, headers=user())
    assert response.status_code == 422, body
    assert response.json()["code"] == "validation_error"


async def test_archived_sessions_are_searched_only_when_asked(client: httpx.AsyncClient) -> None:
    live = (await create_session(client, title="report"))["session_id"]
    old = (await create_session(client, title="report"))["session_id"]
    await client.post(f"{API}/{old}/archive", headers=user())
    assert await _ids(client, query="report") == {live}
    assert (await _search(client, query="report"))["total"] == 1
    assert await _ids(client, query="report", include_archived=True) == {live, old}
    assert await _ids(client, query="report", status="archived") == {old}
    assert await _ids(client, query="report", status=["archived", "active"]) == {live, old}


async def test_search_never_shows_another_users_sessions(client: httpx.AsyncClient) -> None:
    await create_session(client, "alice", title="secret plan", metadata={"k": "v"})
    body = await _search(client, "bob", query="secret")
    assert body == {"sessions": [], "total": 0, "limit": 50, "next_cursor": None}
    assert (await _search(client, "bob", metadata={"k": "v"}))["total"] == 0
