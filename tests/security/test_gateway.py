"""Gateway proof: with GATEWAY_SHARED_SECRET set, /api/ needs X-Gateway-Token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.conftest import ClientFactory, user
from tests.helpers import API
from tests.security.conftest import ServerFactory, request_bytes

SECRET = "s3cret-token-from-the-gateway"


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper(), f" {SECRET}x"],
)
async def test_missing_or_wrong_token_is_untrusted(
    make_client: ClientFactory, token: str | None
) -> None:
    async with make_client(gateway_shared_secret=SECRET) as client:
        headers = user("alice")
        if token is not None:
            headers["X-Gateway-Token"] = token
        for response in (
            await client.get(API, headers=headers),
            await client.post(API, json={"title": "x"}, headers=headers),
            await client.delete("/api/v1/users/alice/sessions", headers=headers),
        ):
            assert response.status_code == 401
            assert response.json()["code"] == "untrusted_caller"


async def test_right_token_is_accepted(make_client: ClientFactory) -> None:
    async with make_client(gateway_shared_secret=SECRET) as client:
        headers = user("alice", **{"X-Gateway-Token": SECRET})
        created = await client.post(API, json={"title": "x"}, headers=headers)
        assert created.status_code == 201, created.text
        listed = await client.get(API, headers=headers)
        assert listed.status_code == 200
        assert listed.json()["total"] == 1


async def test_token_is_checked_before_identity(make_client: ClientFactory) -> None:
    async with make_client(gateway_shared_secret=SECRET) as client:
        response = await client.get(API)
        assert response.status_code == 401
        assert response.json()["code"] == "untrusted_caller"
        response = await client.get(API, headers={"X-Gateway-Token": SECRET})
        assert response.json()["code"] == "missing_user_id"


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/"])
async def test_operations_endpoints_stay_open(make_client: ClientFactory, path: str) -> None:
    async with make_client(gateway_shared_secret=SECRET) as client:
        response = await client.get(path)
        assert response.status_code == 200, response.text


async def test_no_secret_means_no_token_needed(make_client: ClientFactory) -> None:
    async with make_client(gateway_shared_secret="") as client:
        response = await client.get(API, headers=user("alice"))
        assert response.status_code == 200


def test_percent_encoded_api_path_is_guarded(live_server: ServerFactory) -> None:
    # uvicorn decodes the path before routing; the guard must see the same path.
    with live_server(gateway_shared_secret=SECRET) as server:
        for path in ("/%61pi/v1/sessions", "/api/v1/%73essions"):
            status, _, body = server.raw(request_bytes("GET", path, [("X-User-ID", "a")]))
            assert status == 401, (path, body)
            assert json.loads(body)["code"] == "untrusted_caller"
        ok = [("X-User-ID", "a"), ("X-Gateway-Token", SECRET)]
        status, _, _ = server.raw(request_bytes("GET", "/%61pi/v1/sessions", ok))
        assert status == 200


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def warnings_log() -> Iterator[_Records]:
    # create_app() replaces the root handlers, so listen on the service's own logger.
    handler = _Records()
    logger = logging.getLogger("session_service")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _gateway_warnings(handler: _Records) -> list[str]:
    return [r.getMessage() for r in handler.records if "GATEWAY_SHARED_SECRET" in r.getMessage()]


async def test_startup_warns_in_production_without_secret(
    make_client: ClientFactory, warnings_log: _Records
) -> None:
    async with make_client(environment="production", gateway_shared_secret=None):
        pass
    assert len(_gateway_warnings(warnings_log)) == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": "production", "gateway_shared_secret": SECRET},
        {"environment": "development", "gateway_shared_secret": None},
    ],
)
async def test_no_warning_with_secret_or_outside_production(
    make_client: ClientFactory, warnings_log: _Records, overrides: dict[str, object]
) -> None:
    async with make_client(**overrides):
        pass
    assert _gateway_warnings(warnings_log) == []


@pytest.mark.parametrize("tokens", [(SECRET, SECRET), ("wrong", SECRET), (SECRET, "wrong")])
def test_two_gateway_tokens_are_untrusted(
    live_server: ServerFactory, tokens: tuple[str, str]
) -> None:
    with live_server(gateway_shared_secret=SECRET) as server:
        headers = [
            ("X-User-ID", "a"),
            ("X-Gateway-Token", tokens[0]),
            ("x-gateway-token", tokens[1]),
        ]
        status, _, body = server.raw(request_bytes("GET", API, headers))
        assert status == 401
        assert json.loads(body)["code"] == "untrusted_caller"
