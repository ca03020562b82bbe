"""`X-Request-ID`: accepted when well-formed, generated otherwise, returned on
every response, error responses included."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.conftest import ClientFactory, create_session, user

GENERATED = re.compile(r"^[0-9a-f]{32}$")


async def test_a_well_formed_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "gw-1234.abc:5_6"})
    assert response.headers["x-request-id"] == "gw-1234.abc:5_6"


async def test_a_missing_request_id_is_generated_fresh_for_each_request(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert GENERATED.match(first) and GENERATED.match(second)
    assert first != second


async def test_a_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for bad in ("has spaces", "x" * 129, "new\\nline", "<script>", ""):
        response = await client.get("/health", headers={"X-Request-ID": bad})
        assert GENERATED.match(response.headers["x-request-id"]), bad


async def test_identity_errors_from_the_guard_carry_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/sessions", headers={"X-Request-ID": "rid-401"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "rid-401"


async def test_body_errors_from_the_guard_carry_the_request_id(
    make_client: ClientFactory,
) -> None:
    async with make_client(max_request_bytes=1024) as client:
        response = await client.post(
            "/api/v1/sessions",
            content=b"x" * 2048,
            headers={**user(), "X-Request-ID": "rid-413", "Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.headers["x-request-id"] == "rid-413"


async def test_not_found_and_validation_errors_carry_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    session = await create_session(client)
    headers = {**user(), "X-Request-ID": "rid-4xx"}
    missing = await client.get("/api/v1/sessions/sess_unknown", headers=headers)
    invalid = await client.post(
        f"/api/v1/sessions/{session['session_id']}/messages", json={}, headers=headers
    )
    unrouted = await client.get("/nowhere", headers=headers)
    assert [r.status_code for r in (missing, invalid, unrouted)] == [404, 422, 404]
    assert {r.headers["x-request-id"] for r in (missing, invalid, unrouted)} == {"rid-4xx"}


async def test_an_unexpected_failure_answers_500_with_the_request_id(
    make_client: ClientFactory,
) -> None:
    async def boom() -> None:
        raise RuntimeError("bug")

    async with make_client(fresh=True) as client:  # an app of its own: it gains a route
        client.app.add_api_route("/test-only/boom", boom)  # type: ignore[attr-defined]
        response = await client.get("/test-only/boom", headers={"X-Request-ID": "rid-500"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error", "code": "internal_error"}
    assert response.headers["x-request-id"] == "rid-500"


async def test_request_id_is_exposed_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/health", headers={"Origin": "https://app.example", "X-Request-ID": "rid-cors"}
    )
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_an_unexpected_failure_is_logged_once(
    make_client: ClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def boom() -> None:
        raise RuntimeError("bug-logged-once")

    async with make_client(fresh=True, log_format="json", log_level="INFO") as client:
        client.app.add_api_route("/test-only/boom", boom)  # type: ignore[attr-defined]
        capsys.readouterr()
        response = await client.get("/test-only/boom", headers={"X-Request-ID": "rid-once"})
    assert response.status_code == 500
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert "bug-logged-once" in errors[0]["exc"]
    assert errors[0]["request_id"] == "rid-once"
