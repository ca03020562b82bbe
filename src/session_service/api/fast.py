"""A lean dispatcher in front of FastAPI's router, derived from the routes themselves.

FastAPI's routing, exit stacks and dependency solving cost more per request than
the Redis round trip itself (~110 µs of CPU). This middleware takes the app's own
routes, in the router's order, and for a request whose first full match is a
route it can serve it does what FastAPI would do, with FastAPI's own pieces:

- matching: each route's compiled `path_regex` and `param_convertors`, first
  full match wins, exactly as Starlette's router;
- parameters: the route's `Dependant` tree, solved in FastAPI's order with
  FastAPI's `request_params_to_args` / `request_body_to_args`, so path, query
  and header parameters (by alias) and bodies validate and fail identically;
- errors: the handlers' `refused`, the one place the 404-before-422 rule lives.

Anything else (no match, a route using a FastAPI feature the solver does not
handle, a body FastAPI would not parse as JSON, a `root_path`, dependency
overrides) goes to FastAPI unchanged. `FAST_PATH=false` removes this layer, and
the tests run the whole API suite both ways and compare full responses.
"""

from __future__ import annotations

import email.message
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fastapi
import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from session_service import errors
from session_service.api.handlers import error_response, refused
from session_service.api.middleware import replay
from session_service.api.solver import Context, Plan, Unsupported, check
from session_service.store import translate


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


#: What FastAPI's own handler validates an empty body as. Before 0.151 it is `None`
#: (a missing body is one error at `['body']`); from 0.151 on it is `Undefined` (one error
#: per required field, at `['body', name]`). The fast path hands validation the same value,
#: so both paths answer alike on every FastAPI release the declared range admits.
EMPTY_BODY: Any = None if _release(fastapi.__version__) < (0, 151) else PydanticUndefined


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """Only endpoints that build their own Response: no response-model serialization."""
    annotation = inspect.signature(endpoint, eval_str=True).return_annotation
    return isinstance(annotation, type) and issubclass(annotation, Response)


def _flag(value: Any) -> bool:
    return bool(getattr(value, "value", value))  # FastAPI's DefaultPlaceholder or a bool


@dataclass(frozen=True, slots=True)
class Served:
    route: APIRoute
    plan: Plan
    has_body: bool
    strict_content_type: bool


def servable(route: BaseRoute) -> Served | None:
    """How the fast path serves `route`, or None when FastAPI must."""
    if not isinstance(route, APIRoute) or not _returns_response(route.endpoint):
        return None
    try:
        check(route.dependant)
    except Unsupported:
        return None
    return Served(
        route=route,
        plan=Plan(route.dependant, bool(getattr(route, "_embed_body_fields", False))),
        has_body=route.body_field is not None,
        strict_content_type=_flag(getattr(route, "strict_content_type", False)),
    )


@lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    """FastAPI's test of a Content-Type for JSON, cached (clients send few distinct ones)."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class _Forward(Exception):
    """FastAPI answers this request (with its body replayed)."""


_Candidate = tuple[BaseRoute, Any, dict[str, Any], Served | None]


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        """`routes`: every route of the app, in the order its router tries them."""
        self.app = app
        self.served = {id(r): s for r in routes if (s := servable(r)) is not None}
        methods = {m for r in routes for m in (getattr(r, "methods", None) or ())}
        # Per method, the routes that could fully match it, in router order: a route
        # for another method can only match partially, and a full match wins anyway.
        self.candidates: dict[str, list[_Candidate]] = {
            method: [
                (
                    r,
                    getattr(r, "path_regex", None),
                    getattr(r, "param_convertors", {}),
                    self.served.get(id(r)),
                )
                for r in routes
                if getattr(r, "methods", None) is None or method in r.methods  # type: ignore[attr-defined]
            ]
            for method in methods
        }

    def match(self, scope: Scope) -> tuple[Served, dict[str, Any]] | None:
        """The served route Starlette's router would pick for `scope`, with its path params."""
        candidates = self.candidates.get(scope["method"])
        if candidates is None or scope.get("root_path"):
            return None
        path = scope["path"]
        for route, regex, convertors, served in candidates:
            if regex is None:  # a mount or another kind of route: let the router decide
                if route.matches(scope)[0] is not Match.NONE:
                    return None
                continue
            found = regex.match(path)
            if found is None:
                continue
            if served is None:
                return None
            params = {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
            return served, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["app"].dependency_overrides:
            await self.app(scope, receive, send)
            return
        found = self.match(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        served, params = found
        body: Any = PydanticUndefined
        if served.has_body:
            raw = await _read_body(receive)
            try:
                body = _parse(scope, raw, served.strict_content_type)
            except _Forward:
                await self.app(scope, replay(raw, receive), send)
                return
        scope["route"] = served.route
        scope["endpoint"] = served.route.endpoint
        scope["path_params"] = params
        response = await _respond(scope, receive, served, params, body)
        await response(scope, receive, send)


async def _respond(
    scope: Scope, receive: Receive, served: Served, params: dict[str, Any], body: Any
) -> Response:
    ctx = Context(scope, receive, params, body, {})
    try:
        values, problems = await served.plan.solve(ctx)
        if problems:
            return await refused(scope, RequestValidationError(problems))
        assert served.plan.call is not None
        response: Response = await served.plan.call(**values)
        return response
    except errors.ServiceError as exc:
        return await refused(scope, exc)
    except RedisError as exc:
        return error_response(translate(exc))


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # GuardMiddleware never runs a handler for a half-received body
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _parse(scope: Scope, raw: bytes, strict_content_type: bool) -> Any:
    """The body as FastAPI would hand it to validation; `_Forward` when unsure.

    JSON that orjson refuses (malformed, NaN, a BOM, UTF-16...) or reads other
    than `json.loads` could (any number it made a float) goes to FastAPI, which
    parses it with `json.loads` and answers for it.
    """
    if not raw:
        return EMPTY_BODY
    content_type = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
            break
    wants_json = _is_json(content_type) if content_type else not strict_content_type
    if not wants_json:
        return raw
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Forward() from None
    if _has_float(value):
        # orjson reads an integer beyond 64 bits as a float; json.loads keeps it exact.
        raise _Forward()
    return value


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False
