"""Spoofed identity: duplicated identity headers over a real socket, and roles."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ClientFactory, create_session, user
from tests.helpers import API
from tests.security.conftest import ServerFactory, request_bytes


@pytest.mark.parametrize(
    "names",
    [
        ("X-User-ID", "X-User-ID"),
        ("X-User-ID", "x-user-id"),
        ("x-user-id", "X-USER-ID"),
    ],
)
@pytest.mark.parametrize("values", [("alice", "mallory"), ("alice", "alice")])
def test_two_user_id_headers_are_ambiguous(
    live_server: ServerFactory, names: tuple[str, str], values: tuple[str, str]
) -> None:
    with live_server() as server:
        headers = list(zip(names, values, strict=True))
        status, _, body = server.raw(request_bytes("GET", API, headers))
        assert status == 400
        assert json.loads(body)["code"] == "ambiguous_identity"


def test_duplicate_user_id_never_creates_anything(live_server: ServerFactory) -> None:
    with live_server() as server:
        payload = json.dumps({"title": "spoof"}).encode()
        headers = [
            ("X-User-ID", "gateway-user"),
            ("x-user-id", "victim"),
            ("Content-Type", "application/json"),
        ]
        status, _, body = server.raw(request_bytes("POST", API, headers, payload))
        assert status == 400, body
        # Neither identity got a session out of it.
        for who in ("gateway-user", "victim"):
            status, _, body = server.raw(request_bytes("GET", API, [("X-User-ID", who)]))
            assert status == 200
            assert json.loads(body)["total"] == 0


def test_single_user_id_over_socket_is_accepted(live_server: ServerFactory) -> None:
    with live_server() as server:
        status, _, body = server.raw(request_bytes("GET", API, [("x-user-id", "alice")]))
        assert status == 200, body
        assert json.loads(body)["sessions"] == []


@pytest.mark.parametrize(
    ("name", "gateway", "client"),
    [("X-User-Roles", "user", "admin"), ("X-User-Email", "alice@example.com", "root@example.com")],
)
def test_a_duplicated_identity_header_is_ambiguous(
    live_server: ServerFactory, name: str, gateway: str, client: str
) -> None:
    # Issue 12: the gateway forwards the client's own X-User-* next to its own; a client's
    # roles header must not grant admin, and no header is ever picked from two.
    with live_server() as server:
        headers = [("X-User-ID", "alice"), (name, gateway), (name.lower(), client)]
        status, _, body = server.raw(request_bytes("DELETE", "/api/v1/users/bob/sessions", headers))
        assert status == 400
        assert json.loads(body) == {
            "detail": f"More than one {name} header was sent",
            "code": "ambiguous_identity",
        }
        status, _, body = server.raw(request_bytes("GET", API, headers))
        assert (status, json.loads(body)["code"]) == (400, "ambiguous_identity")


ERASE = "/api/v1/users/someone/sessions"


@pytest.mark.parametrize(
    "roles",
    [
        '["admin"]',
        '["support", "admin"]',
        '[" admin "]',
        "admin",
        "support,admin",
        " support ,  admin ",
        "admin, ops.team:lead-1_x",
    ],
)
async def test_valid_roles_grant_admin(client: httpx.AsyncClient, roles: str) -> None:
    response = await client.delete(ERASE, headers=user("root", **{"X-User-Roles": roles}))
    assert response.status_code == 200, response.text
    assert response.json()["deleted_sessions"] == 0


@pytest.mark.parametrize("roles", ['["support"]', "support, ops", "[]", "", "administrator"])
async def test_roles_without_admin_are_forbidden(client: httpx.AsyncClient, roles: str) -> None:
    response = await client.delete(ERASE, headers=user("root", **{"X-User-Roles": roles}))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    "roles",
    [
        "[admin]",  # starts with [ but is not JSON
        '["admin", 1]',  # not all strings
        '[["admin"]]',
        '[{"role": "admin"}]',
        "[",
        '{"roles": ["admin"]}',
        "admin;support",
        "admin support",
        "admin,,support",
        "admin,",
        "*",
        "admin\t,x y",
        '"admin"',
    ],
)
async def test_malformed_roles_header(client: httpx.AsyncClient, roles: str) -> None:
    response = await client.get(API, headers=user("alice", **{"X-User-Roles": roles}))
    assert response.status_code == 400, roles
    assert response.json()["code"] == "invalid_roles_header"


async def test_roles_are_checked_before_anything_is_written(
    make_client: ClientFactory,
) -> None:
    async with make_client() as client:
        bad = user("alice", **{"X-User-Roles": "a b"})
        response = await client.post(API, json={"title": "x"}, headers=bad)
        assert response.status_code == 400
        await create_session(client, "alice")
        listed = await client.get(API, headers=user("alice"))
        assert listed.json()["total"] == 1


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        ("", 401, "missing_user_id"),
        ("x" * 257, 400, "invalid_user_id"),
        ("a\x7fb", 400, "invalid_user_id"),
    ],
)
async def test_user_id_header_bounds(
    client: httpx.AsyncClient, value: str, status: int, code: str
) -> None:
    response = await client.get(API, headers={"X-User-ID": value})
    assert response.status_code == status
    assert response.json()["code"] == code


def test_invalid_utf8_user_id_over_socket(live_server: ServerFactory) -> None:
    with live_server() as server:
        data = request_bytes("GET", API).replace(
            b"Connection: close\r\n", b"Connection: close\r\nX-User-ID: \xff\xfeab\r\n"
        )
        status, _, body = server.raw(data)
        assert status == 400
        assert json.loads(body)["code"] == "invalid_user_id"


header_bytes = st.binary(max_size=300).filter(lambda b: not set(b) & {0, 10, 13})


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=header_bytes, roles=st.none() | header_bytes)
async def test_any_identity_headers_get_a_documented_answer(
    client: httpx.AsyncClient, value: bytes, roles: bytes | None
) -> None:
    headers: list[tuple[bytes, bytes]] = [(b"X-User-ID", value)]
    if roles is not None:
        headers.append((b"X-User-Roles", roles))
    response = await client.post(API, json={"title": "t"}, headers=headers)
    codes = {400: {"invalid_user_id", "invalid_roles_header"}, 401: {"missing_user_id"}}
    if response.status_code != 201:
        assert response.json()["code"] in codes[response.status_code], response.text
        return
    user_id = value.decode("utf-8")
    assert response.json()["user_id"] == user_id
    sid = response.json()["session_id"]
    got = await client.get(f"{API}/{sid}", headers=[(b"X-User-ID", value)])
    assert got.status_code == 200
    assert got.json()["user_id"] == user_id
