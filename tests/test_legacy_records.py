"""Reading one record of the original service: what is kept, what is skipped with a
reason, what is unreadable. Nothing is truncated or repaired."""

from __future__ import annotations

import json
from typing import Any

import pytest

from session_legacy.records import LegacySession, Skip, Unreadable, read_record
from tests.legacy import BOUNDS, at, message, record


def read(data: dict[str, Any]) -> LegacySession | Skip | Unreadable:
    return read_record(f"session:{data['session_id']}", json.dumps(data).encode(), BOUNDS)


def test_message_timestamps_never_go_backwards() -> None:
    later, earlier = at(5), at(10)
    parsed = read(
        record("u", messages=[message("user", "a", later), message("user", "b", earlier)])
    )
    assert isinstance(parsed, LegacySession)
    first, second = parsed.messages
    assert first.timestamp_ms == second.timestamp_ms == int(later.timestamp() * 1000)


def test_missing_timeout_uses_the_default_and_a_missing_session_type_is_troubleshooting() -> None:
    parsed = read(record("u", metadata={}))
    assert isinstance(parsed, LegacySession)
    assert (parsed.timeout_ms, parsed.session_type) == (
        BOUNDS.default_timeout_ms,
        "troubleshooting",
    )


@pytest.mark.parametrize(
    ("change", "kind", "reason"),
    [
        ({"status": "deleted"}, Skip, "deleted"),
        ({"title": "x" * 201}, Skip, "title longer than 200"),
        ({"metadata": {"timeout_minutes": 99999}}, Skip, "outside SESSION_MIN/MAX"),
        ({"metadata": {"timeout_minutes": "soon"}}, Unreadable, "not an integer"),
        ({"metadata": {f"k{n}": n for n in range(65)}}, Skip, "at most 64 keys"),
        ({"messages": [message("user", "x" * 65537, at(1))]}, Skip, "MAX_MESSAGE_BYTES"),
        ({"messages": "hello"}, Unreadable, "messages is not a list"),
        ({"context": []}, Unreadable, "context is not a JSON object"),
        ({"client_id": "has space"}, Unreadable, "client_id"),
        ({"user_id": "a\nb"}, Unreadable, "user_id"),
        ({"last_activity_at": "yesterday"}, Unreadable, "last_activity_at"),
    ],
)
def test_a_record_out_of_bounds_is_skipped_and_a_wrong_one_is_unreadable(
    change: dict[str, Any], kind: type, reason: str
) -> None:
    parsed = read({**record("u"), **change})
    assert isinstance(parsed, kind), parsed
    assert isinstance(parsed, Skip | Unreadable) and reason in parsed.reason


def test_a_record_whose_id_differs_from_its_key_is_unreadable() -> None:
    data = record("u")
    parsed = read_record(
        "session:" + "0" * 8 + data["session_id"][8:], json.dumps(data).encode(), BOUNDS
    )
    assert isinstance(parsed, Unreadable) and "differs from its key" in parsed.reason
