"""Conversion between stored records (short hash fields, ms integers) and API dicts."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from session_service import errors
from session_service.domain.ids import message_id, summary_id
from session_service.domain.timestamps import iso as iso
from session_service.domain.tokens import estimate_tokens

SCHEMA_VERSION = 1

# The stored field names and what they mean: fields.py.


def iso_or_none(raw: str | None) -> str | None:
    if not raw or raw == "0":
        return None
    return iso(int(raw))


def pairs(flat: list[str]) -> dict[str, str]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def session_etag(f: dict[str, str]) -> str:
    """The session's ETag; lib.lua's `etag(sid, 's')` builds the same string."""
    return f'"{f.get("ca", "0")}.s{f.get("ev", "0")}"'


def messages_etag(f: dict[str, str]) -> str:
    """The messages collection's ETag; lib.lua's `etag(sid, 'm')` builds the same string."""
    return f'"{f.get("ca", "0")}.m{f.get("mv", "0")}"'


def last_seq(f: dict[str, str]) -> int:
    """The highest message id ever given (li; sessions older than rewind: their count)."""
    return max(int(f.get("li") or 0), int(f.get("mc") or 0))


def session_from_fields(session_id: str, user_id: str, f: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    context: dict[str, Any] = {}
    for name, value in f.items():
        # Every other field name is one or two letters: the ':' test is one comparison.
        if name[1:2] == ":":
            if name[0] == "m":
                metadata[name[2:]] = orjson.loads(value)
            elif name[0] == "x":
                context[name[2:]] = orjson.loads(value)
    return {
        "session_id": session_id,
        "user_id": user_id,
        "title": f.get("t"),
        "description": f.get("d"),
        "status": f["st"],
        "session_type": f.get("ty", "troubleshooting"),
        "client_id": f.get("ci"),
        "metadata": metadata,
        "context": context,
        "created_at": iso(int(f["ca"])),
        "updated_at": iso(int(f["ua"])),
        "last_activity_at": iso(int(f["la"])),
        "expires_at": iso_or_none(f.get("ea")),
        "timeout_minutes": int(f["to"]) / 60000,
        "message_count": int(f.get("mc", 0)),
        "forked_from": (
            {
                "session_id": f["fs"],
                "message_id": message_id(int(f["fi"])) if f["fi"] != "0" else None,
            }
            if "fs" in f
            else None
        ),
    }


def message_from_entry(entry_id: str, fields: list[str] | dict[str, str]) -> dict[str, Any]:
    f = fields if isinstance(fields, dict) else pairs(fields)
    meta = f.get("m")
    tokens = f.get("k")
    message = {
        "message_id": message_id(int(entry_id.partition("-")[2])),
        "role": f["r"],
        "content": f["c"],
        "timestamp": iso(int(f["t"])),
        "metadata": orjson.loads(meta) if meta else {},
        # Entries of earlier releases have no count: estimated by the same rule.
        "token_count": estimate_tokens(f["c"]) if tokens is None else int(tokens),
        "token_count_estimated": tokens is None or f.get("e") == "1",
    }
    if "tc" in f:
        message["tool_calls"] = orjson.loads(f["tc"])
    if "ti" in f:
        message["tool_call_id"] = f["ti"]
    return message


def summary_from_entry(entry_id: str, fields: list[str] | dict[str, str]) -> dict[str, Any]:
    f = fields if isinstance(fields, dict) else pairs(fields)
    meta = f.get("m")
    return {
        "summary_id": summary_id(int(entry_id.partition("-")[2])),
        "covers_through": message_id(int(f["w"])),
        "content": f["c"],
        "token_count": int(f["k"]),
        "token_count_estimated": f.get("e") == "1",
        "created_at": iso(int(f["t"])),
        "metadata": orjson.loads(meta) if meta else {},
    }


def dump_json(value: Any) -> str:
    """Canonical JSON for stored values, so equal values compare equal in Lua."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


_SCORE = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def encode_cursor(walk: str, score: str, session_id: str) -> str:
    """A search cursor: the walk's snapshot and the exclusive (activity, id) to resume after."""
    raw = f"{walk}:{score}:{session_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str]:
    """(walk, score, session id); a cursor from before walks had snapshots has no walk."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = raw.split(":")
        if len(parts) == 2:
            parts.insert(0, "")
        walk, score, sid = parts
        if walk and not walk.isalnum():
            raise ValueError(walk)
        if not _SCORE.fullmatch(score):
            raise ValueError(score)
        return walk, score, sid
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidRequest("cursor is not valid", field="cursor") from None
