"""Reading and building prompt windows, for the window tests (`test_window*.py`)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import API, appended, create_session, user


async def window(client: httpx.AsyncClient, sid: str, max_tokens: int) -> dict[str, Any]:
    response = await client.get(
        f"{API}/{sid}/window", params={"max_tokens": max_tokens}, headers=user()
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    assert set(data) == {"summary", "messages", "total_tokens", "truncated", "first_message_id"}
    return data


async def summarize(
    client: httpx.AsyncClient, sid: str, through: str, tokens: int
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/{sid}/summaries",
        json={"content": f"up to {through}", "covers_through": through, "token_count": tokens},
        headers=user(),
    )
    assert response.status_code == 201, response.text
    summary: dict[str, Any] = response.json()
    return summary


def ids(data: dict[str, Any]) -> list[str]:
    return [m["message_id"] for m in data["messages"]]


async def conversation(client: httpx.AsyncClient, *tokens: int) -> str:
    sid: str = (await create_session(client))["session_id"]
    for i, count in enumerate(tokens):
        await appended(client, sid, role="user" if i % 2 == 0 else "assistant", content=f"m{i}",
                     token_count=count)  # fmt: skip
    return sid
