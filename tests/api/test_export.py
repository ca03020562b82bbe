"""Transcript export as JSON or markdown, streamed in chunks (issue 3, item 8)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from session_service.store.sessions import EXPORT_CHUNK, SessionStore
from tests.conftest import create_session, user
from tests.helpers import fill

CONVERSATION = [
    ("user", "Why do writes time out?"),
    ("assistant", "Let's look at the connection pool.\n\n```\nmax_connections = 20\n```"),
    ("system", "Context: production, eu-west-1"),
    ("user", "Pool is exhausted — 20/20 in use 🙂"),
]


async def new_conversation(client: httpx.AsyncClient, **session: Any) -> str:
    sid: str = (await create_session(client, **session))["session_id"]
    for role, content in CONVERSATION:
        response = await client.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"role": role, "content": content, "metadata": {"role_was": role}},
            headers=user(),
        )
        assert response.status_code == 201, response.text
    return sid


async def export(client: httpx.AsyncClient, sid: str, **params: str) -> httpx.Response:
    return await client.get(f"/api/v1/sessions/{sid}/export", params=params, headers=user())


async def test_json_export_holds_the_session_and_every_message_in_order(
    client: httpx.AsyncClient,
) -> None:
    sid = await new_conversation(client, title="Write timeouts", metadata={"env": "prod"})
    session = (await client.get(f"/api/v1/sessions/{sid}", headers=user())).json()
    paged = await client.get(
        f"/api/v1/sessions/{sid}/messages", params={"order": "asc"}, headers=user()
    )

    response = await export(client, sid)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == f'attachment; filename="{sid}.json"'
    body = response.json()
    messages = body.pop("messages")
    assert body.pop("summaries") == []
    assert body == session
    assert messages == paged.json()["messages"]
    assert [(m["role"], m["content"]) for m in messages] == CONVERSATION


async def test_json_is_the_default_format(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client)

    default = await export(client, sid)
    explicit = await export(client, sid, format="json")

    assert default.content == explicit.content
    assert explicit.headers["content-type"] == "application/json"


async def test_markdown_export_lists_every_message_in_order(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client, title="Write timeouts", description="RDS in eu-west-1")

    response = await export(client, sid, format="markdown")

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == "text/markdown"
    assert response.headers["content-disposition"] == f'attachment; filename="{sid}.md"'
    text = response.text
    assert text.startswith("# Write timeouts\n")
    assert sid in text
    assert "RDS in eu-west-1" in text
    positions = [text.index(content) for _, content in CONVERSATION]
    assert positions == sorted(positions)
    for n, (role, _) in enumerate(CONVERSATION, start=1):
        assert f"### {role} · " in text
        assert f"msg_{n:010d}" in text


async def test_markdown_export_of_an_untitled_empty_session(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    response = await export(client, sid, format="markdown")

    assert response.status_code == 200
    assert response.text.startswith("# Untitled session\n")
    assert "### " not in response.text


async def test_json_export_of_an_empty_session_has_no_messages(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]

    response = await export(client, sid)

    assert response.status_code == 200
    assert response.json()["messages"] == []
    assert response.json()["message_count"] == 0


async def test_an_archived_session_can_still_be_exported(client: httpx.AsyncClient) -> None:
    sid = await new_conversation(client)
    await client.post(f"/api/v1/sessions/{sid}/archive", headers=user())

    response = await export(client, sid)

    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert len(response.json()["messages"]) == len(CONVERSATION)


@pytest.mark.parametrize("fmt", ["xml", "JSON", "md", ""])
async def test_an_unknown_format_is_422(client: httpx.AsyncClient, fmt: str) -> None:
    sid = await new_conversation(client)

    response = await export(client, sid, format=fmt)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_openapi_documents_both_export_media_types(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    content = spec["paths"]["/api/v1/sessions/{session_id}/export"]["get"]["responses"]["200"]
    assert set(content["content"]) == {"application/json", "text/markdown"}


# ---- a long conversation ----------------------------------------------------------

LARGE = 20_000


@pytest.mark.slow
async def test_a_20000_message_session_exports_completely_in_both_formats(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    sid = (await create_session(client))["session_id"]
    await fill(store, redis, "u1", sid, LARGE)

    as_json = await export(client, sid)
    as_markdown = await export(client, sid, format="markdown")

    body = orjson.loads(as_json.content)
    assert body["message_count"] == LARGE
    assert [m["message_id"] for m in body["messages"]] == [
        f"msg_{n:010d}" for n in range(1, LARGE + 1)
    ]
    assert body["messages"][-1]["content"] == f"message {LARGE}"
    text = as_markdown.text
    assert text.count("\n### ") == LARGE
    assert text.rstrip().endswith(f"message {LARGE}")


async def test_export_reads_the_conversation_in_bounded_chunks(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    sid = (await create_session(client))["session_id"]
    count = EXPORT_CHUNK * 3 + 7
    await fill(store, redis, "u1", sid, count)

    sizes = [len(chunk) async for chunk in store.iter_messages("u1", sid, count)]

    assert sizes == [EXPORT_CHUNK, EXPORT_CHUNK, EXPORT_CHUNK, 7]


async def asgi_get(app: Any, path: str, query: bytes) -> list[dict[str, Any]]:
    """Call the app as a server would and keep every ASGI message it sends."""
    sent: list[dict[str, Any]] = []
    requested = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"x-user-id", b"u1")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("fmt", [b"json", b"markdown"])
async def test_a_large_export_is_sent_in_pieces_not_built_at_once(
    client: httpx.AsyncClient, redis: Redis, fmt: bytes
) -> None:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    sid = (await create_session(client))["session_id"]
    count = EXPORT_CHUNK * 8
    await fill(store, redis, "u1", sid, count)

    sent = await asgi_get(client.app, f"/api/v1/sessions/{sid}/export", b"format=" + fmt)  # type: ignore[attr-defined]

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    pieces = [m["body"] for m in sent[1:] if m["type"] == "http.response.body"]
    whole = b"".join(pieces)
    assert whole.count(b"message ") == count
    assert len([p for p in pieces if p]) >= 8
    assert max(len(p) for p in pieces) < len(whole) / 4
