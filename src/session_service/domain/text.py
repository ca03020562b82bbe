"""Small text rules: titles derived from messages, search folding, and the bounds of JSON
values as stored (what orjson can serialize, how large, how deep)."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson

TITLE_FROM_MESSAGE_CHARS = 60

J = TypeVar("J")


def title_from_message(content: str, limit: int = TITLE_FROM_MESSAGE_CHARS) -> str:
    """About `limit` characters of the first line, cut at a word boundary."""
    text = " ".join(content.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" .,;:-") + "…"


def search_fold(text: str) -> str:
    """The lowered copy search matches against, stored beside the text.

    Redis' Lua `string.lower` folds only ASCII and lowering on every search costs
    more than the match itself; a stored copy is exact for any script and cheap.
    """
    return text.lower()


def lone_surrogate(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where `value` (parsed JSON) holds a string that is not Unicode text, or None.

    JSON may spell a lone surrogate (`"\\ud800"`) and `json.loads` accepts it, but no
    UTF-8 encoder does: it could be neither stored nor served back. Object keys count
    too. The path names the field the way validation errors do (`tool_calls.0.name`).
    """
    if isinstance(value, str):
        return None if value.isascii() or _encodable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _encodable(key):
                return path
            found = lone_surrogate(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate(item, (*path, str(index)))
            if found is not None:
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


NOT_UNICODE = "must be valid Unicode text (a lone surrogate such as \\ud800 is not)"


def unencodable(value: Any) -> str:
    """Why orjson could not serialize a parsed JSON value: text that is not Unicode,
    else an integer beyond 64 bits (it could not be stored or served back exactly)."""
    where = lone_surrogate(value)
    if where is not None:
        return ".".join(where) + ": " + NOT_UNICODE if where else NOT_UNICODE
    return "numbers must fit in 64 bits"


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest: 0 for a scalar, 1 for a flat object or array."""
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


def check_json_bounds(value: J, max_bytes: int, max_depth: int) -> J:
    """`value` unchanged when orjson serializes it within `max_bytes` and it nests no deeper
    than `max_depth`; else ValueError saying which bound it breaks."""
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise ValueError(unencodable(value)) from None
    if size > max_bytes:
        raise ValueError(f"at most {max_bytes} bytes when serialized")
    if json_depth(value) > max_depth:
        raise ValueError(f"at most {max_depth} levels deep")
    return value
