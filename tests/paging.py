"""Read whole histories by paging, never one page that assumes how much was written."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import user


async def all_messages(
    client: httpx.AsyncClient, session_id: str, user_id: str = "u1"
) -> tuple[int, list[dict[str, Any]]]:
    """(total, every message oldest first), walking `after` cursors to the end."""
    messages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"order": "asc", "limit": 500}
    while True:
        response = await client.get(
            f"/api/v1/sessions/{session_id}/messages", params=params, headers=user(user_id)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        messages += page["messages"]
        if not page["has_more"]:
            return page["total"], messages
        params["after"] = page["next_cursor"]


async def all_sessions(
    client: httpx.AsyncClient, user_id: str = "u1", **params: Any
) -> tuple[int, list[dict[str, Any]]]:
    """(total, every listed session), page by page until a short page."""
    sessions: list[dict[str, Any]] = []
    while True:
        response = await client.get(
            "/api/v1/sessions",
            params={**params, "limit": 100, "offset": len(sessions)},
            headers=user(user_id),
        )
        assert response.status_code == 200, response.text
        page = response.json()
        sessions += page["sessions"]
        if len(page["sessions"]) < 100:
            return page["total"], sessions
