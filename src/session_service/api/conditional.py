"""ETags on the wire: If-Match / If-None-Match, 304 answers, and the 412 check
for requests refused before their script runs (RFC 9110 §13.1-13.2).

A conditional write is checked inside its Lua script (lib.lua `precondition`),
atomically with the write; this module only turns the headers into the one
argument the scripts take: If-Match's strong tags (or `*`), and If-None-Match's
tags each prefixed with `!` (`!*` for `*`): a write fails with 412 when an
If-Match tag is given and none matches, or when an If-None-Match tag matches.
Reads write nothing, so comparing here after the read is exact: a failed
If-Match is a 412, then a matching If-None-Match a 304.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from starlette.responses import Response

from session_service import errors

if TYPE_CHECKING:
    from session_service.store import SessionStore

Kind = Literal["s", "m"]  # the session's ETag, or its messages collection's

# An entity tag has no spaces (RFC 9110 §8.8.3): the scripts split the argument on them.
_TAG = re.compile(r'(W/)?("[^"\s]*")')
# Never one of ours: a header that names no strong tag can match nothing.
_NOTHING = '"-"'
# The If-Match dependencies (api/deps.py registers them) and the ETag each compares with.
IF_MATCH_KINDS: dict[Callable[..., Any], Kind] = {}


def if_match_arg(header: str | None) -> str:
    """The script argument: '' no condition, '*' exists, else the strong tags.

    If-Match compares strongly (RFC 9110 13.1.1), so weak tags never match.
    """
    if header is None:
        return ""
    value = header.strip()
    if value == "*":
        return "*"
    tags = [tag for weak, tag in _TAG.findall(value) if not weak]
    return " ".join(tags) or _NOTHING


def precondition_arg(if_match: str | None, if_none_match: str | None) -> str:
    """The script argument for a write carrying both headers (see the module docstring).

    If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" and "x" both name "x".
    """
    arg = if_match_arg(if_match)
    if if_none_match is None:
        return arg
    value = if_none_match.strip()
    tags = ["*"] if value == "*" else [tag for _, tag in _TAG.findall(value)]
    return " ".join([arg, *("!" + tag for tag in tags)]).strip()


def if_match_holds(arg: str, current: str) -> bool:
    """Python twin of lib.lua's `precondition`: does the request's condition hold?"""
    wanted = matched = False
    for tag in arg.split():
        if tag.startswith("!"):
            if tag[1:] in ("*", current):
                return False
            continue
        wanted = True
        matched = matched or tag in ("*", current)
    return matched or not wanted


def check_read(arg: str, current: str) -> None:
    """A read whose If-Match does not hold is a 412 (RFC 9110 13.1.1), before any 304."""
    if not if_match_holds(arg, current):
        raise errors.PreconditionFailed(current)


def not_modified(header: str | None, current: str) -> bool:
    """If-None-Match compares weakly: W/"x" matches "x"."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag == current for _, tag in _TAG.findall(header))


def tagged(etag: str) -> dict[str, str]:
    return {"ETag": etag}


def not_modified_response(etag: str) -> Response:
    return Response(status_code=304, headers=tagged(etag))


def remember(scope: Any, kind: Kind, arg: str) -> None:
    """Note the request's precondition, so a request refused before its endpoint
    runs (a body FastAPI rejects) still answers 412 before 422."""
    if arg:
        scope.setdefault("state", {})["precondition"] = (kind, arg)


async def precheck(
    store: SessionStore, user_id: str, session_id: str, kind: Kind, arg: str
) -> None:
    """Raise the 404 or 412 the write's script would have answered first."""
    current = await store.current_etag(user_id, session_id, kind)
    if not if_match_holds(arg, current):
        raise errors.PreconditionFailed(current)


async def precondition_failure(
    scope: Any, user_id: str, session_id: str
) -> errors.ServiceError | None:
    noted = scope.get("state", {}).get("precondition") or _from_route(scope)
    if noted is None:
        return None
    kind, arg = noted
    try:
        await precheck(scope["app"].state.store, user_id, session_id, kind, arg)
    except errors.ServiceError as exc:
        return exc
    return None


def _from_route(scope: Any) -> tuple[Kind, str] | None:
    """A JSON body FastAPI cannot parse is refused before any dependency runs, so the
    If-Match dependency noted nothing: find it on the route and read the header here."""
    dependant = getattr(scope.get("route"), "dependant", None)
    for sub in getattr(dependant, "dependencies", ()):
        kind = IF_MATCH_KINDS.get(sub.call)
        if kind is not None:
            arg = precondition_arg(_header(scope, b"if-match"), _header(scope, b"if-none-match"))
            return (kind, arg) if arg else None
    return None


def _header(scope: Any, name: bytes) -> str | None:
    value = next((v for n, v in scope.get("headers", ()) if n == name), None)
    return value.decode("latin-1") if value is not None else None
