"""Bounds on everything a caller sends: body size, fields, ids and query parameters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API
from tests.security.conftest import ServerFactory, read_response, request_bytes

SMALL = 2048  # MAX_REQUEST_BYTES for the size tests


# ---- request body size ------------------------------------------------------


def test_content_length_too_big_is_refused_before_the_body(live_server: ServerFactory) -> None:
    with live_server(max_request_bytes=SMALL) as server, server.connect() as sock:
        # Only the headers: the answer must come without the body ever being sent.
        head = request_bytes("POST", API, [("X-User-ID", "a")], content_length=False)
        sock.sendall(head[:-2] + b"Content-Length: 1000000000\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 413
        assert json.loads(body)["code"] == "request_too_large"


def test_chunked_body_too_big_is_refused_before_its_end(live_server: ServerFactory) -> None:
    with live_server(max_request_bytes=SMALL) as server, server.connect() as sock:
        headers = [("X-User-ID", "a"), ("Transfer-Encoding", "chunked")]
        sock.sendall(request_bytes("POST", API, headers, content_length=False))
        chunk = b"x" * 1500
        # Two chunks go over the limit; the terminating chunk is never sent.
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2)
        status, _, body = read_response(sock)
        assert status == 413
        assert json.loads(body)["code"] == "request_too_large"


def test_body_at_the_limit_is_read(live_server: ServerFactory) -> None:
    with live_server(max_request_bytes=SMALL) as server:
        payload = json.dumps({"title": "t", "description": "d" * 1500}).encode()
        assert len(payload) <= SMALL
        headers = [("X-User-ID", "a"), ("Content-Type", "application/json")]
        status, _, body = server.raw(request_bytes("POST", API, headers, payload))
        assert status == 201, body


async def test_too_large_body_writes_nothing(make_client: ClientFactory, redis: Redis) -> None:
    async with make_client(max_request_bytes=SMALL) as client:
        body = {"title": "x", "metadata": {"k": "v" * SMALL}}
        response = await client.post(API, json=body, headers=user("a"))
        assert response.status_code == 413
        assert response.json()["code"] == "request_too_large"
        assert await redis.dbsize() == 0


# ---- field bounds -----------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": ... 1}}."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return dict(value)


OK_CREATE: list[dict[str, Any]] = [
    {"title": "t" * 200},
    {"title": "é" * 200},
    {"description": "d" * 5000},
    {"metadata": {f"k{i}": i for i in range(64)}},
    {"metadata": {"k" * 128: 1}},
    {"metadata": {"k": "v" * (16 * 1024 - len('{"k":""}'))}},
    {"metadata": nested(5)},
    {"metadata": {"a": [[[[1]]]]}},
]
BAD_CREATE: list[dict[str, Any]] = [
    {"title": "t" * 201},
    {"title": "é" * 201},
    {"description": "d" * 5001},
    {"metadata": {f"k{i}": i for i in range(65)}},
    {"metadata": {"k" * 129: 1}},
    {"metadata": {"": 1}},
    {"metadata": {"k": "v" * (16 * 1024 - len('{"k":""}') + 1)}},
    {"metadata": nested(6)},
    {"metadata": {"a": [[[[[1]]]]]}},
    {"metadata": ["not", "an", "object"]},
    {"client_id": "c" * 129},
    {"session_type": "x" * 65},
    {"unknown_field": 1},
]


@pytest.mark.parametrize("body", OK_CREATE, ids=range(len(OK_CREATE)))
async def test_create_within_bounds(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post(API, json=body, headers=user("a"))
    assert response.status_code == 201, response.text
    got = response.json()
    for key, value in body.items():
        assert got[key] == value


@pytest.mark.parametrize("body", BAD_CREATE, ids=range(len(BAD_CREATE)))
async def test_create_out_of_bounds(
    client: httpx.AsyncClient, redis: Redis, body: dict[str, Any]
) -> None:
    response = await client.post(API, json=body, headers=user("a"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("field", ["metadata", "context"])
@pytest.mark.parametrize(
    "value",
    [
        {f"k{i}": i for i in range(65)},
        {"k" * 129: 1},
        {"k": "v" * (16 * 1024)},
        nested(6),
    ],
    ids=["keys", "key_length", "bytes", "depth"],
)
async def test_patch_out_of_bounds(
    client: httpx.AsyncClient, field: str, value: dict[str, Any]
) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    response = await client.patch(f"{API}/{sid}", json={field: value}, headers=user("a"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("field", ["metadata", "context"])
async def test_patch_merge_over_key_count(client: httpx.AsyncClient, field: str) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    url = f"{API}/{sid}"
    first = {f"k{i}": i for i in range(64)}
    assert (await client.patch(url, json={field: first}, headers=user("a"))).status_code == 200
    # Each patch alone is small; the merge would have 65 keys.
    response = await client.patch(url, json={field: {"one_more": 1}}, headers=user("a"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    # Nothing of the rejected patch was written; replacing a key still works.
    session = (await client.get(url, headers=user("a"))).json()
    assert session[field] == first
    swap = {"k0": None, "one_more": 1}
    assert (await client.patch(url, json={field: swap}, headers=user("a"))).status_code == 200


@pytest.mark.parametrize("field", ["metadata", "context"])
async def test_patch_merge_over_size(client: httpx.AsyncClient, field: str) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    url = f"{API}/{sid}"
    half = "v" * (9 * 1024)
    assert (
        await client.patch(url, json={field: {"a": half}}, headers=user("a"))
    ).status_code == 200
    response = await client.patch(url, json={field: {"b": half}}, headers=user("a"))
    assert response.status_code == 422, response.text
    session = (await client.get(url, headers=user("a"))).json()
    assert session[field] == {"a": half}


async def test_message_and_search_metadata_bounds(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    bad = {f"k{i}": i for i in range(65)}
    message = {"role": "user", "content": "hi", "metadata": bad}
    response = await client.post(f"{API}/{sid}/messages", json=message, headers=user("a"))
    assert response.status_code == 422
    response = await client.post(f"{API}/search", json={"metadata": bad}, headers=user("a"))
    assert response.status_code == 422


# ---- malformed ids: 404 without a storage call -----------------------------

BAD_SESSION_IDS = [
    "x",
    "sess_",
    "sess_" + "g" * 32,
    "sess_" + "A" * 32,
    "sess_" + "0" * 31,
    "sess_" + "0" * 33,
    "SESS_" + "0" * 32,
    "sess_%2A",
    "%7Bu%7D",
    "sess_" + "0" * 32 + "%0A",
    "*",
    "..",
    "%00",
    "a" * 200,
    "sess_" + "0" * 4000,
]

STORAGE_FREE = {"info", "config", "client", "hello", "ping", "select", "command"}


async def storage_commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    out: dict[str, int] = {}
    for name, value in stats.items():
        command = name.removeprefix("cmdstat_").split("|")[0]
        if command not in STORAGE_FREE:
            out[command] = out.get(command, 0) + int(value["calls"])
    return out


@pytest.fixture
async def quiet_client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as client:
        # Let the startup checks (CONFIG GET) and the change feed's SUBSCRIBE, which runs
        # in the background and comes late on a busy machine, finish before counting commands.
        assert (await client.get(f"{API}/sess_{'0' * 32}", headers=user("a"))).status_code == 404
        feed = client.app.state.feed  # type: ignore[attr-defined]
        await asyncio.wait_for(feed.subscribed.wait(), 60)
        yield client


@pytest.mark.parametrize("sid", BAD_SESSION_IDS)
async def test_malformed_session_id_is_404_without_storage(
    quiet_client: httpx.AsyncClient, redis: Redis, sid: str
) -> None:
    await redis.config_resetstat()
    h = user("a")
    base = f"{API}/{sid}"
    responses = [
        await quiet_client.get(base, headers=h),
        await quiet_client.patch(base, json={"title": "x"}, headers=h),
        await quiet_client.patch(base, json={"title": 5}, headers=h),
        await quiet_client.delete(base, headers=h),
        await quiet_client.post(f"{base}/heartbeat", headers=h),
        await quiet_client.post(
            f"{base}/messages", json={"role": "user", "content": "x"}, headers=h
        ),
        await quiet_client.get(f"{base}/messages", headers=h),
        await quiet_client.get(f"{base}/messages/msg_0000000001", headers=h),
        await quiet_client.get(f"{base}/stats", headers=h),
        await quiet_client.get(f"{base}/export", headers=h),
        await quiet_client.post(f"{base}/cases", json={"case_id": "c1"}, headers=h),
    ]
    for response in responses:
        assert response.status_code == 404, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/json"
    assert await storage_commands(redis) == {}


async def test_well_formed_unknown_id_does_reach_storage(
    quiet_client: httpx.AsyncClient, redis: Redis
) -> None:
    # The counter above can see storage calls: a well-formed id is looked up.
    await redis.config_resetstat()
    response = await quiet_client.get(f"{API}/sess_{'0' * 32}", headers=user("a"))
    assert response.status_code == 404
    assert await storage_commands(redis) != {}


@pytest.mark.parametrize(
    "mid",
    [
        "x",
        "msg_",
        "msg_1",
        "msg_0000000000",
        "msg_000000000a",
        "msg_00000000001",
        "*",
        "0-1",
        "msg_" + "1" * 61,
        "m" * 4000,
    ],
)
async def test_malformed_message_id_is_404_without_storage(
    quiet_client: httpx.AsyncClient, redis: Redis, mid: str
) -> None:
    sid = (await create_session(quiet_client, "a"))["session_id"]
    await redis.config_resetstat()
    response = await quiet_client.get(f"{API}/{sid}/messages/{mid}", headers=user("a"))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "message_not_found"
    assert await storage_commands(redis) == {}


async def test_missing_message_on_real_session_is_404(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    response = await client.get(f"{API}/{sid}/messages/msg_0000000001", headers=user("a"))
    assert response.status_code == 404
    assert response.json()["code"] == "message_not_found"


# ---- query parameters -------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=99999999999999999999999",
        "offset=-1",
        "offset=10001",
        "status=bogus",
        "status=active&status=active&status=active&status=active&status=active&status=active",
        "include_archived=maybe",
    ],
)
async def test_list_query_bounds(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"{API}?{query}", headers=user("a"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "order=sideways",
        "after=msg_1",
        "before=" + "9" * 20,
        "after=msg_0000000001&before=msg_0000000002",
    ],
)
async def test_message_query_bounds(client: httpx.AsyncClient, query: str) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    response = await client.get(f"{API}/{sid}/messages?{query}", headers=user("a"))
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 101},
        {"query": "q" * 201},
        {"cursor": "c" * 201},
        {"cursor": "!!not-a-cursor!!"},
        {"status": "bogus"},
    ],
)
async def test_search_bounds(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    await create_session(client, "a")
    response = await client.post(f"{API}/search", json=body, headers=user("a"))
    assert response.status_code == 422, response.text


async def test_get_session_and_export_query_bounds(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client, "a"))["session_id"]
    for url in (
        f"{API}/{sid}?include_messages=true&limit=0",
        f"{API}/{sid}?include_messages=true&limit=501",
        f"{API}/{sid}/export?format=exe",
    ):
        response = await client.get(url, headers=user("a"))
        assert response.status_code == 422, (url, response.text)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**40])
async def test_integers_beyond_64_bits_are_422_not_500(
    client: httpx.AsyncClient, number: int
) -> None:
    doc = {"a": {"b": [number]}}
    sid = (await create_session(client, "a"))["session_id"]
    h = user("a")
    for response in (
        await client.post(API, json={"metadata": doc}, headers=h),
        await client.post(f"{API}/search", json={"metadata": doc}, headers=h),
        await client.patch(f"{API}/{sid}", json={"context": doc}, headers=h),
        await client.post(
            f"{API}/{sid}/messages",
            json={"role": "user", "content": "x", "metadata": doc},
            headers=h,
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"
