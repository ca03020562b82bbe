"""CORS from CORS_ORIGINS: credentials never go with a wildcard origin."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.helpers import API

APP = "https://app.faultmaven.com"
ADMIN = "https://admin.faultmaven.com"
EVIL = "https://evil.example"


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-user-id",
    }


async def _simple_get(client: httpx.AsyncClient, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "X-User-ID": "a", "Cookie": "session=1"}
    return await client.get(API, headers=headers)


@pytest.mark.parametrize("origins", ["*", f"*,{APP}", f"{APP},*"])
async def test_wildcard_never_allows_credentials(make_client: ClientFactory, origins: str) -> None:
    async with make_client(cors_origins=origins) as client:
        for origin in (EVIL, APP):
            response = await client.options(API, headers=preflight(origin))
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in response.headers
            # A request carrying a cookie must not make the origin be echoed back.
            response = await _simple_get(client, origin)
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in response.headers


async def test_explicit_origins_allow_credentials_only_for_them(
    make_client: ClientFactory,
) -> None:
    async with make_client(cors_origins=f"{APP}, {ADMIN}") as client:
        for origin in (APP, ADMIN):
            response = await client.options(API, headers=preflight(origin))
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-allow-credentials"] == "true"
            response = await _simple_get(client, origin)
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-allow-credentials"] == "true"
            assert "x-request-id" in response.headers["access-control-expose-headers"].lower()

        response = await client.options(API, headers=preflight(EVIL))
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers
        response = await _simple_get(client, EVIL)
        assert "access-control-allow-origin" not in response.headers
        for lookalike in (APP + ".evil.example", APP.upper(), "null", APP + ":443"):
            response = await client.options(API, headers=preflight(lookalike))
            assert response.headers.get("access-control-allow-origin") != lookalike


async def test_preflight_needs_no_identity_or_token(make_client: ClientFactory) -> None:
    async with make_client(cors_origins=APP, gateway_shared_secret="s") as client:
        response = await client.options(API, headers=preflight(APP))
        assert response.status_code == 200
        # The preflight is answered; the real request still needs the gateway's proof.
        response = await client.get(API, headers={"Origin": APP, "X-User-ID": "a"})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_simple_cross_site_bodies_are_not_json(
    make_client: ClientFactory, content_type: str
) -> None:
    # A browser sends these content types cross-site without a preflight: never act on them.
    async with make_client() as client:
        h = {"X-User-ID": "a"}
        sid = (await client.post(API, json={}, headers=h)).json()["session_id"]
        h["Content-Type"] = content_type
        attempts = [
            ("POST", API, b'{"title": "csrf"}'),
            ("POST", f"{API}/{sid}/messages", b'{"role": "user", "content": "csrf"}'),
            ("PATCH", f"{API}/{sid}", b'{"title": "csrf"}'),
            ("POST", f"{API}/{sid}/cases", b'{"case_id": "csrf"}'),
        ]
        for method, url, body in attempts:
            response = await client.request(method, url, content=body, headers=h)
            assert response.status_code == 422, (url, response.text)
        listed = await client.get(API, headers={"X-User-ID": "a"})
        assert listed.json()["total"] == 1
        session = listed.json()["sessions"][0]
        assert session["title"] is None
        assert session["message_count"] == 0


async def test_a_browser_can_read_the_etag_and_send_conditional_headers(
    make_client: ClientFactory,
) -> None:
    # ETag is not a CORS-safelisted response header: unless exposed, a web client sees no
    # ETag and cannot send If-Match / If-None-Match (issue 14's polling and conditional writes).
    async with make_client(cors_origins=APP) as client:
        headers = {"Origin": APP, "X-User-ID": "a"}
        created = await client.post(API, headers=headers, json={})
        assert created.status_code == 201
        exposed = created.headers["access-control-expose-headers"].lower().split(", ")
        assert "etag" in exposed
        asked = "x-user-id,if-match,if-none-match,idempotency-key,content-type"
        response = await client.options(
            f"{API}/{created.json()['session_id']}",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": asked,
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-headers"].lower() == asked
        polled = await client.get(
            f"{API}/{created.json()['session_id']}",
            headers={**headers, "If-None-Match": created.headers["etag"]},
        )
        assert polled.status_code == 304
        assert "etag" in polled.headers["access-control-expose-headers"].lower().split(", ")
