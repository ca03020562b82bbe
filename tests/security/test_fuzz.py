"""schemathesis against the served OpenAPI document, over a real socket.

Every operation gets generated requests (valid and invalid): no 5xx, every
status documented for its operation, bodies matching their schemas, media types
as documented, and requests that break the schema rejected. Half of the generated session ids
are swapped for real ones so the fuzzer reaches past the 404.
"""

from __future__ import annotations

import json
import os
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis as sync_redis
import requests
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from session_service.app import create_app
from session_service.config import Settings
from tests.security.conftest import LiveServer, serve

USER = "fuzz-user"
HEADERS = {"X-User-ID": USER}
SETTINGS = Settings(_env_file=None)
# Per operation; about a minute on two cores. Raise it locally to hunt deeper.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "100"))

# The document the app serves at /openapi.json (checked below), loaded at collection.
OPENAPI = create_app(SETTINGS).openapi()
# A request that is both invalid and sent with a stale If-Match is refused with 412:
# the precondition is checked before the request itself (issue 14's error order).
REJECTED = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "412"]
schema = schemathesis.openapi.from_dict(
    OPENAPI,
    config=SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}}
    ),
)


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={**HEADERS, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        data: dict[str, Any] = json.load(response)
        return data


class Sessions:
    """A few real sessions of the fuzzing user, recreated when the fuzzer deletes one."""

    def __init__(self, server: LiveServer, size: int = 4) -> None:
        self.server = server
        self.ids = [self._new(i) for i in range(size)]

    def _new(self, i: int) -> str:
        sid = str(_post(self.server, "/api/v1/sessions", {"title": f"fuzz {i}"})["session_id"])
        for role in ("user", "assistant"):
            _post(self.server, f"/api/v1/sessions/{sid}/messages", {"role": role, "content": "hi"})
        return sid

    def pick(self, seed: str) -> str:
        i = zlib.crc32(seed.encode("utf-8", "surrogatepass")) % len(self.ids)
        try:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{self.server.url}/api/v1/sessions/{self.ids[i]}", headers=HEADERS
                )
            ).close()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
            self.ids[i] = self._new(i)
        return self.ids[i]


@pytest.fixture(scope="module")
def fuzz_server(redis_url: str) -> Iterator[LiveServer]:
    client = sync_redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    with serve(redis_url, max_sessions_per_user=100_000) as server:
        yield server


@pytest.fixture(scope="module")
def real_sessions(fuzz_server: LiveServer) -> Sessions:
    return Sessions(fuzz_server)


def test_fuzzed_schema_is_the_served_one(fuzz_server: LiveServer) -> None:
    with urllib.request.urlopen(f"{fuzz_server.url}/openapi.json") as response:
        assert json.load(response) == OPENAPI


def _aim(case: Any, sessions: Sessions) -> None:
    """Point valid cases at real sessions and messages half of the time."""
    if case.meta is None or case.meta.is_negative_at(ParameterLocation.PATH):
        return
    params = case.path_parameters
    seed = str(params.get("session_id", ""))
    if "session_id" in params and zlib.crc32(seed.encode("utf-8", "surrogatepass")) % 2:
        params["session_id"] = sessions.pick(seed)
        if "message_id" in params:
            params["message_id"] = "msg_0000000001"
    # Deployment settings bound timeout_minutes; the static schema cannot say which.
    body = case.body
    if (
        isinstance(body, dict)
        and isinstance(body.get("timeout_minutes"), int)
        and not case.meta.is_negative_at(ParameterLocation.BODY)
    ):
        low, high = SETTINGS.session_min_timeout_minutes, SETTINGS.session_max_timeout_minutes
        body["timeout_minutes"] = min(max(body["timeout_minutes"], low), high)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_api_answers_as_documented(
    case: Any, fuzz_server: LiveServer, real_sessions: Sessions
) -> None:
    # HTTP clients resolve "." and ".." segments before sending (RFC 3986): the request
    # would be for another operation, so it says nothing about this one.
    assume(not any(str(value) in {".", ".."} for value in case.path_parameters.values()))
    _aim(case, real_sessions)
    # Not "valid requests are accepted": some rules cannot be said in OpenAPI (an
    # Idempotency-Key reused, after with before, a document's depth or serialized size).
    case.call_and_validate(
        base_url=fuzz_server.url, headers=HEADERS, excluded_checks=[positive_data_acceptance]
    )


GUARD_STATUSES = {"400", "401", "422", "429", "503", "507"}  # identity, rate, storage
BODY_STATUSES = {"408", "413"}  # GuardMiddleware reads every POST/PUT/PATCH/DELETE body


def test_every_api_operation_documents_the_guard_answers() -> None:
    missing = []
    for path, operations in OPENAPI["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            needed = GUARD_STATUSES | (BODY_STATUSES if method != "get" else set())
            if needed - set(operation["responses"]):
                missing.append((method, path, sorted(needed - set(operation["responses"]))))
    assert missing == []


def _documented(method: str, template: str, response: Any) -> None:
    schema[template][method].validate_response(response)


def test_guard_and_domain_answers_are_documented(redis_url: str) -> None:
    """Answers the fuzzer rarely reaches (guard, limits, conflicts), checked against the schema."""
    client = sync_redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    overrides = {"max_request_bytes": 2048, "max_message_bytes": 100, "max_sessions_per_user": 3}
    with serve(redis_url, **overrides) as server, requests.Session() as http:
        base = f"{server.url}/api/v1"
        coll, one = "/api/v1/sessions", "/api/v1/sessions/{session_id}"
        h = {"X-User-ID": "docs"}
        seen: set[tuple[str, str, int]] = set()

        def call(method: str, template: str, url: str, **kwargs: Any) -> Any:
            response = http.request(method, url, **kwargs)
            _documented(method, template, response)
            seen.add((method, template, response.status_code))
            return response

        created = call("POST", coll, f"{base}/sessions", json={"client_id": "c"}, headers=h)
        sid = created.json()["session_id"]
        call("POST", coll, f"{base}/sessions", json={"client_id": "c"}, headers=h)  # resume
        call("POST", coll, f"{base}/sessions", json={})  # no identity
        call("POST", coll, f"{base}/sessions", json={}, headers={"X-User-ID": "x" * 300})
        call("POST", coll, f"{base}/sessions", json={"title": 5}, headers=h)
        call("POST", coll, f"{base}/sessions", data=b"x" * 4096, headers=h)
        call("POST", coll, f"{base}/sessions", json={}, headers={**h, "X-User-Roles": "a b"})
        k = {**h, "Idempotency-Key": "k1"}
        call("POST", coll, f"{base}/sessions", json={"title": "a"}, headers=k)
        call("POST", coll, f"{base}/sessions", json={"title": "b"}, headers=k)
        call("POST", coll, f"{base}/sessions", json={"title": "c"}, headers=h)
        call("POST", coll, f"{base}/sessions", json={"title": "d"}, headers=h)  # limit

        messages = "/api/v1/sessions/{session_id}/messages"
        big = {"role": "user", "content": "m" * 101}
        call("POST", messages, f"{base}/sessions/{sid}/messages", json=big, headers=h)
        call("PATCH", one, f"{base}/sessions/{sid}", json={"status": "active"}, headers=h)
        call("POST", f"{one}/restore", f"{base}/sessions/{sid}/restore", headers=h)
        call("POST", f"{one}/archive", f"{base}/sessions/{sid}/archive", headers=h)
        call("POST", messages, f"{base}/sessions/{sid}/messages", json=big, headers=h)
        ok = {"role": "user", "content": "hi"}
        call("POST", messages, f"{base}/sessions/{sid}/messages", json=ok, headers=h)
        call("GET", one, f"{base}/sessions/sess_{'0' * 32}", headers=h)
        # Every method that may carry a body is bounded, routes without a body model too.
        call("DELETE", one, f"{base}/sessions/{sid}", data=b"x" * 4096, headers=h)
        call("POST", f"{one}/heartbeat", f"{base}/sessions/{sid}/heartbeat", data=b"x" * 4096)
        erase = "/api/v1/users/{user_id}/sessions"
        call("DELETE", erase, f"{base}/users/docs/sessions", headers=h)
        admin = {**h, "X-User-Roles": "admin"}
        call("DELETE", erase, f"{base}/users/docs/sessions", headers=admin)

        statuses = {status for _, _, status in seen}
        assert statuses >= {200, 201, 400, 401, 403, 404, 409, 413, 422}, seen

    with serve(redis_url, rate_limit_per_minute=1) as server, requests.Session() as http:
        url = f"{server.url}/api/v1/sessions"
        responses = [http.get(url, headers={"X-User-ID": "rl"}) for _ in range(3)]
        assert responses[-1].status_code == 429
        for response in responses:
            _documented("GET", "/api/v1/sessions", response)
