"""A `Call`: one request to send and how to read its answer; the helpers that build them.

Both clients run the same calls (one blocking, one awaiting), so their surfaces cannot
drift apart, and this module is the one place that knows paths, headers and bodies.
`OPERATIONS` names the client method for each operation of the service's OpenAPI
document; a test checks that it covers the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from fm_session_client import models

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1/sessions"


class _Unset:
    """A field not given (as opposed to `None`, which the service reads as "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

MessageInput = models.MessageCreate | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    has_body: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    #: A repeat cannot act twice (a read, an idempotent write, or a write with a key).
    repeatable: bool = False
    #: Answers that are not errors.
    ok: frozenset[int] = frozenset({200, 201, 204})


def new_idempotency_key() -> str:
    return f"fmc-{uuid.uuid4().hex}"


def session_path(session_id: str) -> str:
    return f"{API}/{quote(session_id, safe='')}"


def model_of(cls: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        value = cls.model_validate(response.json())
        if "etag" in cls.model_fields and "etag" in response.headers:
            value = value.model_copy(update={"etag": response.headers["etag"]})
        return value

    return parse


def model_or_none(cls: type[M]) -> Callable[[httpx.Response], M | None]:
    """None for a 304 Not Modified (the `if_none_match` ETag still holds)."""
    parse = model_of(cls)

    def parse_or_none(response: httpx.Response) -> M | None:
        return None if response.status_code == 304 else parse(response)

    return parse_or_none


def nothing(response: httpx.Response) -> None:
    return None


def etag_of(response: httpx.Response) -> str | None:
    """The ETag of a HEAD; None for a 304."""
    return None if response.status_code == 304 else response.headers.get("etag")


def text_of(response: httpx.Response) -> str:
    return response.text


def conditional(if_match: str | None = None, if_none_match: str | None = None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if if_match is not None:
        headers["If-Match"] = if_match
    if if_none_match is not None:
        headers["If-None-Match"] = if_none_match
    return headers


def keyed(
    key: str | None, if_match: str | None = None, if_none_match: str | None = None
) -> dict[str, str]:
    """An Idempotency-Key on every write that takes one: the caller's, or a fresh one."""
    return {"Idempotency-Key": key or new_idempotency_key(), **conditional(if_match, if_none_match)}


def given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not UNSET}


def message_body(value: MessageInput) -> dict[str, Any]:
    message = value if isinstance(value, models.MessageCreate) else models.MessageCreate(**value)
    return message.to_json()
