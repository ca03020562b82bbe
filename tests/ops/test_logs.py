"""Logs: JSON or text lines on stderr, one access line per request with the
route template and request id; never message content, never a raw user id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from session_service.observability.logging import (
    JsonFormatter,
    ServiceHandler,
    user_ref,
    write_access_line,
)
from tests.conftest import ClientFactory, create_session, user
from tests.ops.service import running_service
from tests.servers import free_port

SECRET = "my database password is hunter2"
USER = "alice@example.com"


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def access_lines(err: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(err) if e["logger"] == "session_service.access"]


async def test_json_access_line_has_method_route_status_duration_and_request_id(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(log_format="json", log_level="INFO") as client:
        session = await create_session(client)
        capsys.readouterr()
        await client.get(
            f"/api/v1/sessions/{session['session_id']}",
            headers={**user(), "X-Request-ID": "rid-json"},
        )
    [line] = access_lines(capsys.readouterr().err)
    assert line["method"] == "GET"
    assert line["route"] == "/api/v1/sessions/{session_id}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == "rid-json"
    assert line["level"] == "INFO"
    assert line["ts"].endswith("Z")


async def test_concurrent_requests_each_write_one_access_line_in_the_same_turn(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lines of requests that finish while others are in flight share one write."""
    async with make_client(log_format="json", log_level="INFO") as client:
        session = await create_session(client)
        capsys.readouterr()
        path = f"/api/v1/sessions/{session['session_id']}"
        answers = await asyncio.gather(
            *(client.get(path, headers={**user(), "X-Request-ID": f"rid-{n}"}) for n in range(40))
        )
        assert [a.status_code for a in answers] == [200] * 40
        await asyncio.sleep(0)  # the turn in which batched lines are written
        lines = access_lines(capsys.readouterr().err)
    assert sorted(line["request_id"] for line in lines) == sorted(f"rid-{n}" for n in range(40))


async def test_logs_never_hold_message_content_or_the_raw_user_id(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    case_service = f"http://127.0.0.1:{free_port()}"
    async with make_client(
        log_format="json", log_level="DEBUG", case_service_url=case_service
    ) as client:
        session = await create_session(client, USER)
        base = f"/api/v1/sessions/{session['session_id']}"
        await client.post(
            f"{base}/messages", json={"role": "user", "content": SECRET}, headers=user(USER)
        )
        for path in ("/messages", "/export", "/cases", ""):
            assert (await client.get(base + path, headers=user(USER))).status_code == 200
    err = capsys.readouterr().err
    assert SECRET not in err and "hunter2" not in err
    assert USER not in err and "alice" not in err
    assert {line["user"] for line in access_lines(err)} == {user_ref(USER)}


async def test_every_log_line_of_a_request_carries_its_request_id(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_case_service = f"http://127.0.0.1:{free_port()}"
    async with make_client(
        log_format="json", log_level="INFO", case_service_url=dead_case_service
    ) as client:
        session = await create_session(client)
        capsys.readouterr()
        response = await client.get(
            f"/api/v1/sessions/{session['session_id']}/cases",
            headers={**user(), "X-Request-ID": "rid-cases"},
        )
        assert response.json()["case_service"] == "unavailable"
    lines = [e for e in json_lines(capsys.readouterr().err) if "request_id" in e]
    loggers = {e["logger"] for e in lines}
    assert {"session_service.case_service", "session_service.access"} <= loggers
    assert {e["request_id"] for e in lines} == {"rid-cases"}


async def test_text_format_puts_the_request_id_on_the_access_line(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(log_format="text", log_level="INFO") as client:
        await client.get("/health", headers={"X-Request-ID": "rid-text"})
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if "session_service.access" in x]
    assert "[rid-text]" in line
    assert "GET /health 200" in line
    assert " session_service [-] storage: " in err, "lines outside a request show [-]"


async def test_json_is_the_default_outside_development(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(environment="production", log_level="INFO") as client:
        capsys.readouterr()
        await client.get("/health")
    assert [line["route"] for line in access_lines(capsys.readouterr().err)] == ["/health"]


async def test_access_log_can_be_turned_off(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with make_client(log_format="json", log_level="INFO", access_log=False) as client:
        capsys.readouterr()
        await client.get("/health")
    assert access_lines(capsys.readouterr().err) == []


def test_the_real_process_writes_only_json_lines_and_one_access_line_per_request(
    tmp_path: Path, redis_url: str
) -> None:
    with running_service(tmp_path, "serve", REDIS_URL=redis_url, LOG_FORMAT="json") as service:
        for n in range(3):
            httpx.get(f"{service.url}/health", headers={"X-Request-ID": f"rid-real-{n}"})
        service.terminate()
        assert service.wait(timeout=15) == 0
    lines = json_lines(service.stderr())  # fails on any line that is not JSON
    ours = [e for e in lines if str(e.get("request_id", "")).startswith("rid-real-")]
    assert [(e["logger"], e["request_id"]) for e in ours] == [
        ("session_service.access", f"rid-real-{n}") for n in range(3)
    ]
    assert any("Started server process" in e["msg"] for e in lines)


def test_a_line_batched_on_a_loop_that_closed_is_written_with_the_next_one() -> None:
    """A loop closed before its flush ran (a test's) must not hold lines back for good."""
    stream = io.StringIO()
    handler = ServiceHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:

        async def in_flight_request(n: int) -> None:
            write_access_line("GET", "/health", 200, 1.0, None, alone=False)

        loop = asyncio.new_event_loop()
        loop.run_until_complete(in_flight_request(1))
        loop.close()  # the flush it scheduled never ran
        asyncio.run(in_flight_request(2))  # its own flush runs before the loop ends
        assert [e["route"] for e in access_lines(stream.getvalue())] == ["/health"] * 2
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
