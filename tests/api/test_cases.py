"""Case links and the fm-case-service merge (issue 4, item 10).

The case service is played by a small real HTTP server on a loopback port, in a
thread, that can answer well, slowly, with a 500, with garbage or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API, get_json
from tests.servers import free_port

TIMEOUT = 0.3  # CASE_SERVICE_TIMEOUT for these tests, in seconds


@dataclass
class FakeCaseService:
    """What the case service answers, and what it was asked."""

    mode: str = "up"  # up | slow | trickle | error | garbage | not_a_list
    cases: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@contextlib.contextmanager
def case_service(state: FakeCaseService) -> Iterator[FakeCaseService]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append(
                {
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "user": self.headers.get("X-User-ID"),
                }
            )
            if state.mode == "slow":
                time.sleep(TIMEOUT * 3)
            if state.mode == "error":
                self._send(500, b'{"detail": "boom"}')
                return
            if state.mode == "garbage":
                self._send(200, b"{this is not json")
                return
            if state.mode == "not_a_list":
                self._send(200, b'{"cases": "nope"}')
                return
            body = json.dumps(
                {"cases": state.cases, "total": len(state.cases), "page": 1, "page_size": 100}
            ).encode()
            if state.mode == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # Each byte arrives well within the timeout; the whole answer does not.
                with contextlib.suppress(OSError):
                    for i in range(0, len(body), 8):
                        self.wfile.write(body[i : i + 8])
                        self.wfile.flush()
                        time.sleep(TIMEOUT / 3)
                return
            self._send(200, body)

        def _send(self, status: int, body: bytes) -> None:
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def remote() -> Iterator[FakeCaseService]:
    with case_service(FakeCaseService()) as state:
        yield state


async def _link(client: httpx.AsyncClient, sid: str, case_id: str) -> httpx.Response:
    return await client.post(f"{API}/{sid}/cases", json={"case_id": case_id}, headers=user())


async def _cases(client: httpx.AsyncClient, sid: str, user_id: str = "u1") -> dict[str, Any]:
    cases: dict[str, Any] = await get_json(client, f"{API}/{sid}/cases", user_id)
    return cases


# ---- links --------------------------------------------------------------------------


async def test_link_answers_the_link(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await _link(client, sid, "case-1")
    assert response.status_code == 200
    body = response.json()
    assert body["session_id"] == sid
    assert body["case_id"] == "case-1"
    assert body["linked"] is True
    assert body["linked_at"].endswith("Z")


async def test_linking_twice_is_idempotent_and_keeps_the_first_link_time(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    first = (await _link(client, sid, "case-1")).json()
    await asyncio.sleep(0.005)
    second = (await _link(client, sid, "case-1")).json()
    assert second == first
    listed = await _cases(client, sid)
    assert [c["case_id"] for c in listed["cases"]] == ["case-1"]
    assert listed["total"] == 1


async def test_unlink_answers_204_and_removes_only_that_link(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    await _link(client, sid, "case-1")
    await _link(client, sid, "case-2")
    response = await client.delete(f"{API}/{sid}/cases/case-1", headers=user())
    assert response.status_code == 204
    assert [c["case_id"] for c in (await _cases(client, sid))["cases"]] == ["case-2"]


async def test_one_link_over_max_cases_per_session_is_409_too_many_cases(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_cases_per_session=3) as client:
        sid = (await create_session(client))["session_id"]
        for i in range(3):
            assert (await _link(client, sid, f"case-{i}")).status_code == 200
        over = await _link(client, sid, "case-3")
        assert over.status_code == 409
        assert over.json()["code"] == "too_many_cases"
        assert "MAX_CASES_PER_SESSION" in over.json()["detail"]
        assert (await _link(client, sid, "case-0")).status_code == 200  # relinking stays idempotent
        assert [c["case_id"] for c in (await _cases(client, sid))["cases"]] == [
            "case-0", "case-1", "case-2"
        ]  # fmt: skip
        await client.delete(f"{API}/{sid}/cases/case-1", headers=user())
        assert (await _link(client, sid, "case-3")).status_code == 200


async def test_unlinking_a_case_that_is_not_linked_is_a_no_op(client: httpx.AsyncClient) -> None:
    sid = (await create_session(client))["session_id"]
    response = await client.delete(f"{API}/{sid}/cases/never-linked", headers=user())
    assert response.status_code == 204


@pytest.mark.parametrize("case_id", ["", "has space", "a/b", "x" * 129, 42])
async def test_an_invalid_case_id_is_422(client: httpx.AsyncClient, case_id: Any) -> None:
    sid = (await create_session(client))["session_id"]
    response = await client.post(f"{API}/{sid}/cases", json={"case_id": case_id}, headers=user())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


# ---- the case service -------------------------------------------------------------------


async def test_unset_case_service_answers_local_links_as_unavailable(
    client: httpx.AsyncClient,
) -> None:
    sid = (await create_session(client))["session_id"]
    await _link(client, sid, "case-1")
    body = await _cases(client, sid)
    assert body["session_id"] == sid
    assert body["case_service"] == "unavailable"
    assert body["total"] == 1
    [case] = body["cases"]
    assert case["case_id"] == "case-1"
    assert case["linked"] is True


async def test_case_service_is_called_with_the_session_paging_and_the_callers_id(
    make_client: ClientFactory, remote: FakeCaseService
) -> None:
    async with make_client(case_service_url=remote.url) as client:
        headers = [(b"X-User-ID", "user-ü".encode())]
        created = await client.post(API, json={}, headers=headers)
        sid = created.json()["session_id"]
        response = await client.get(f"{API}/{sid}/cases", headers=headers)
    assert response.status_code == 200
    assert response.json()["case_service"] == "available"
    [request] = remote.requests
    assert request["path"] == f"/api/v1/cases/session/{sid}"
    assert request["query"] == {"page": ["1"], "page_size": ["100"]}
    assert request["user"].encode("latin-1").decode("utf-8") == "user-ü"


async def test_case_service_cases_are_merged_with_local_links(
    make_client: ClientFactory, remote: FakeCaseService
) -> None:
    remote.cases = [
        {"case_id": "case-1", "title": "DB outage", "status": "open", "priority": "high"},
        {"case_id": "case-2", "title": "Only remote", "status": "closed"},
    ]
    async with make_client(case_service_url=remote.url) as client:
        sid = (await create_session(client))["session_id"]
        await _link(client, sid, "case-1")
        await _link(client, sid, "case-3")
        body = await _cases(client, sid)
    assert body["case_service"] == "available"
    assert body["total"] == 3
    by_id = {c["case_id"]: c for c in body["cases"]}
    assert set(by_id) == {"case-1", "case-2", "case-3"}
    assert by_id["case-1"]["linked"] is True
    assert by_id["case-1"]["title"] == "DB outage"
    assert by_id["case-1"]["status"] == "open"
    assert by_id["case-1"]["priority"] == "high"
    assert by_id["case-1"]["linked_at"] is not None
    assert by_id["case-2"]["linked"] is False
    assert by_id["case-2"]["linked_at"] is None
    assert by_id["case-2"]["title"] == "Only remote"
    assert by_id["case-3"]["linked"] is True


@pytest.mark.parametrize("mode", ["slow", "trickle", "error", "garbage", "not_a_list"])
async def test_a_failing_case_service_still_answers_200_with_local_links(
    make_client: ClientFactory, remote: FakeCaseService, mode: str
) -> None:
    remote.mode = mode
    remote.cases = [{"case_id": "remote-only", "title": "x"}]
    async with make_client(case_service_url=remote.url, case_service_timeout=TIMEOUT) as client:
        sid = (await create_session(client))["session_id"]
        await _link(client, sid, "case-1")
        started = time.monotonic()
        body = await _cases(client, sid)
        print(f"{mode}: answered in {time.monotonic() - started:.3f}s")
    assert body["case_service"] == "unavailable"
    assert [(c["case_id"], c["linked"]) for c in body["cases"]] == [("case-1", True)]
    assert body["total"] == 1
    assert len(remote.requests) == 1


async def test_a_case_service_that_is_down_still_answers_200(make_client: ClientFactory) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with make_client(case_service_url=closed, case_service_timeout=TIMEOUT) as client:
        sid = (await create_session(client))["session_id"]
        await _link(client, sid, "case-1")
        body = await _cases(client, sid)
    assert body["case_service"] == "unavailable"
    assert [c["case_id"] for c in body["cases"]] == ["case-1"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://[::1"])
async def test_a_case_service_url_httpx_cannot_use_still_answers_200(
    make_client: ClientFactory, url: str
) -> None:
    async with make_client(case_service_url=url) as client:
        sid = (await create_session(client))["session_id"]
        body = await _cases(client, sid)
    assert body["case_service"] == "unavailable"
    assert body["cases"] == []
