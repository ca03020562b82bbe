"""The 16 KiB bound of metadata and context holds on the serialized form, on every path.

A merge (PATCH, PUT) is checked by the update script against what is stored; keys
with control characters, quotes or backslashes serialize longer than their bytes
(`\\u0001` is six bytes for one), and the bound is on what a client reads back.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from session_service.domain.models import MAX_JSON_BYTES
from tests.conftest import create_session, user
from tests.helpers import API


def size(value: dict[str, Any]) -> int:
    return len(orjson.dumps(value))


def escaped_key(index: int) -> str:
    """128 characters, 120 of them control characters: 730 bytes serialized."""
    return "\x01" * 120 + f"{index:08d}"


@pytest.mark.parametrize("field", ["metadata", "context"])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_merging_escaped_keys_never_stores_more_than_the_bound(
    client: httpx.AsyncClient, field: str, method: str
) -> None:
    sid = (await create_session(client))["session_id"]
    answers = []

    for batch in range(4):  # each request alone is under the bound (16 keys, ~11.7 KiB)
        change = {escaped_key(batch * 16 + i): 1 for i in range(16)}
        assert size(change) < MAX_JSON_BYTES
        response = await client.request(
            method, f"{API}/{sid}", json={field: change}, headers=user()
        )
        answers.append(response.status_code)
        if response.status_code == 422:
            assert response.json()["code"] == "validation_error"
            assert "bytes when serialized" in response.json()["detail"]

    stored = (await client.get(f"{API}/{sid}", headers=user())).json()[field]
    assert size(stored) <= MAX_JSON_BYTES, f"{size(stored)} bytes stored"
    assert answers[0] == 200 and 422 in answers, answers


# One key of each kind the serializer escapes differently, and multi-byte UTF-8.
ODD_KEYS = {
    '"quoted"': 1,
    "back\\slash": [1, "two"],
    "tab\tnl\ncr\rff\fbs\b": {"x": None},
    "nul\x00unit\x1fvt\x0b": "v",
    "del\x7fline\u2028é😀": True,
}


def padded(total: int) -> dict[str, Any]:
    """ODD_KEYS plus a "pad" string making the serialized object exactly `total` bytes."""
    base = size({**ODD_KEYS, "pad": ""})
    return {**ODD_KEYS, "pad": "p" * (total - base)}


@pytest.mark.parametrize("field", ["metadata", "context"])
async def test_a_merge_is_bounded_at_exactly_the_serialized_size(
    client: httpx.AsyncClient, field: str
) -> None:
    sid = (await create_session(client))["session_id"]
    path = f"{API}/{sid}"
    first = await client.patch(path, json={field: ODD_KEYS}, headers=user())
    assert first.status_code == 200, first.text[:200]

    over = await client.patch(
        path, json={field: {"pad": padded(MAX_JSON_BYTES + 1)["pad"]}}, headers=user()
    )
    exact = await client.patch(
        path, json={field: {"pad": padded(MAX_JSON_BYTES)["pad"]}}, headers=user()
    )

    assert over.status_code == 422, over.text[:200]
    assert exact.status_code == 200, exact.text[:200]
    assert size(exact.json()[field]) == MAX_JSON_BYTES


async def test_create_and_merge_draw_the_line_at_the_same_byte(client: httpx.AsyncClient) -> None:
    exact = await client.post(API, json={"metadata": padded(MAX_JSON_BYTES)}, headers=user())
    over = await client.post(API, json={"metadata": padded(MAX_JSON_BYTES + 1)}, headers=user())

    assert exact.status_code == 201, exact.text[:200]
    assert over.status_code == 422, over.text[:200]
    assert size(exact.json()["metadata"]) == MAX_JSON_BYTES
