"""An unknown or another user's session is 404 on every route that names one.

The table is generated from the app's routes, so a new route is covered the day it
is added. A foreign session must leak nothing (its content never appears) and must
be left exactly as it was (same ETags, same messages): the 404 comes before any
check of the body, the headers or the preconditions.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from session_service.app import create_app, routes_in_order
from session_service.config import Settings
from tests.conftest import create_session, user

UNKNOWN = "sess_" + "0" * 32
#: Ids no session can have: any length, any shape (a malformed id is simply not found).
MALFORMED = ("junk", "sess_XYZ", "x" * 65)
#: Values for the other path parameters: well-formed, and naming nothing.
OTHER_PARAMS = {"message_id": "msg_1", "case_id": "case-1"}
SECRET = "the owner's secret"


def session_routes() -> list[tuple[str, str]]:
    app = create_app(Settings(_env_file=None, log_level="ERROR"))  # type: ignore[call-arg]
    out = []
    for route in routes_in_order(app):
        if isinstance(route, APIRoute) and "{session_id}" in route.path:
            out += [(method, route.path) for method in sorted(route.methods)]
    return out


ROUTES = session_routes()


def _path(template: str, session_id: str) -> str:
    return template.format(session_id=session_id, **OTHER_PARAMS)


def _codes(template: str) -> set[str]:
    """A route that names a message may say either: the answer is the same for an
    unknown and a foreign session, so it tells nobody whether the session exists."""
    if "{message_id}" in template:
        return {"session_not_found", "message_not_found"}
    return {"session_not_found"}


def _body(method: str) -> dict[str, Any] | None:
    # Deliberately empty: the 404 must come before the body is looked at.
    return {} if method in ("POST", "PUT", "PATCH") else None


def test_the_table_covers_every_kind_of_session_route() -> None:
    paths = {path for _, path in ROUTES}
    assert "/api/v1/sessions/{session_id}" in paths
    assert "/api/v1/sessions/{session_id}/messages" in paths
    assert len(ROUTES) >= 23, ROUTES


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_an_unknown_or_malformed_session_is_404(
    client: httpx.AsyncClient, method: str, template: str
) -> None:
    for session_id in (UNKNOWN, *MALFORMED):
        response = await client.request(
            method, _path(template, session_id), json=_body(method), headers=user()
        )
        assert response.status_code == 404, (session_id, response.text)
        if method != "HEAD":
            assert response.json()["code"] in _codes(template)


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_another_users_session_is_404_and_left_untouched(
    client: httpx.AsyncClient, method: str, template: str
) -> None:
    sid = (await create_session(client, user_id="owner", title=SECRET))["session_id"]
    appended = await client.post(
        f"/api/v1/sessions/{sid}/messages",
        json={"role": "user", "content": SECRET},
        headers=user("owner"),
    )
    assert appended.status_code == 201
    before = await client.get(f"/api/v1/sessions/{sid}", headers=user("owner"))
    pages = await client.get(f"/api/v1/sessions/{sid}/messages", headers=user("owner"))

    response = await client.request(
        method, _path(template, sid), json=_body(method), headers=user("intruder")
    )
    unknown = await client.request(
        method, _path(template, UNKNOWN), json=_body(method), headers=user("intruder")
    )

    assert response.status_code == 404, response.text
    assert SECRET not in response.text
    if method != "HEAD":
        assert response.json()["code"] in _codes(template)
        assert response.json() == unknown.json()
    after = await client.get(f"/api/v1/sessions/{sid}", headers=user("owner"))
    assert after.json() == before.json()
    assert after.headers["etag"] == before.headers["etag"]
    again = await client.get(f"/api/v1/sessions/{sid}/messages", headers=user("owner"))
    assert (again.json(), again.headers.get("etag")) == (pages.json(), pages.headers.get("etag"))
