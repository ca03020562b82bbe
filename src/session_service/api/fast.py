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
from enum import Enum
from functools import lru_cache
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import orjson
from fastapi import params
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined
from redis.exceptions import RedisError
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session_service import errors
from session_service.api.handlers import error_response, refused
from session_service.store import translate


class _Unsupported(Exception):
    """A route uses something the lean solver does not do exactly like FastAPI."""


def _check(dependant: Dependant) -> None:
    if dependant.call is None or not inspect.iscoroutinefunction(dependant.call):
        raise _Unsupported("only async callables (no generators, no thread pool)")
    special = (
        dependant.cookie_params,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
        getattr(dependant, "concurrency", None),
    )
    if any(special):
        raise _Unsupported("cookies, websockets, responses, background tasks, security")
    for sub in dependant.dependencies:
        _check(sub)


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """Only endpoints that build their own Response: no response-model serialization."""
    annotation = inspect.signature(endpoint, eval_str=True).return_annotation
    return isinstance(annotation, type) and issubclass(annotation, Response)


def _flag(value: Any) -> bool:
    return bool(getattr(value, "value", value))  # FastAPI's DefaultPlaceholder or a bool


@dataclass(frozen=True, slots=True)
class Served:
    route: APIRoute
    plan: _Plan
    has_body: bool
    strict_content_type: bool


def servable(route: BaseRoute) -> Served | None:
    """How the fast path serves `route`, or None when FastAPI must."""
    if not isinstance(route, APIRoute) or not _returns_response(route.endpoint):
        return None
    try:
        _check(route.dependant)
    except _Unsupported:
        return None
    return Served(
        route=route,
        plan=_Plan(route.dependant, bool(getattr(route, "_embed_body_fields", False))),
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


@dataclass(slots=True)
class _Context:
    scope: Scope
    request: Request
    path_params: dict[str, Any]
    body: Any
    cache: dict[Any, Any]


_ATOMIC = (str, int, float, bool, type(None))


def _request_key(field: ModelField) -> str | None:
    """The one name FastAPI looks the parameter up by, or None when it has choices."""
    try:
        from fastapi.dependencies.utils import _get_param_aliases
    except ImportError:  # older FastAPI: the alias is the only name
        return str(field.alias)
    aliases = _get_param_aliases(field)
    return str(aliases[0][1]) if len(aliases) == 1 else None


def _is_scalar(annotation: Any) -> bool:
    if annotation in _ATOMIC or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return True
    origin = get_origin(annotation)
    if origin is Literal:
        return all(isinstance(arg, _ATOMIC) for arg in get_args(annotation))
    if origin in (Union, UnionType):
        return all(_is_scalar(arg) for arg in get_args(annotation))
    return False


@dataclass(frozen=True, slots=True)
class _Param:
    field: ModelField
    key: str
    loc: tuple[str, str]
    default: Any  # PydanticUndefined when required or not a plain value


def _simple_params(fields: Sequence[ModelField]) -> list[_Param] | None:
    """Scalar parameters looked up by one name; None sends the group to FastAPI's code."""
    simple = []
    for field in fields:
        key = _request_key(field)
        info = field.field_info
        if key is None or not _is_scalar(info.annotation):
            return None
        plain = not info.is_required() and not info.validate_default
        default = info.default if plain and isinstance(info.default, _ATOMIC) else PydanticUndefined
        simple.append(_Param(field, key, (info.in_.value, key), default))  # type: ignore[attr-defined]
    return simple


class _Plan:
    """One dependant, compiled: what to solve and how, in FastAPI's order."""

    __slots__ = (
        "body",
        "body_simple",
        "call",
        "groups",
        "leaf",
        "name",
        "request_name",
        "subs",
        "use_cache",
    )

    def __init__(self, dependant: Dependant, embed_body: bool) -> None:
        self.call = dependant.call
        self.name = dependant.name
        self.use_cache = dependant.use_cache
        self.subs = [_Plan(sub, embed_body) for sub in dependant.dependencies]
        self.groups = [
            (fields, _simple_params(fields), where)
            for fields, where in (
                (dependant.path_params, "path"),
                (dependant.query_params, "query"),
                (dependant.header_params, "header"),
            )
            if fields
        ]
        self.body = (dependant.body_params, embed_body) if dependant.body_params else None
        first = dependant.body_params[0].field_info if dependant.body_params else None
        self.body_simple = (
            first is not None
            and len(dependant.body_params) == 1
            and not embed_body
            and not getattr(first, "embed", False)
            and not isinstance(first, params.Form)
        )
        self.request_name = dependant.request_param_name
        self.leaf = not self.subs and not self.groups and self.body is None

    async def solve(self, ctx: _Context) -> tuple[dict[str, Any], list[Any]]:
        """FastAPI's `solve_dependencies` for the subset `_check` admits, in its order.

        Valid values are validated by each field as FastAPI does; as soon as a
        group has a problem, FastAPI's own function redoes that group, so error
        lists are FastAPI's by construction.
        """
        values: dict[str, Any] = {}
        problems: list[Any] = []
        for sub in self.subs:
            if sub.leaf:  # only (at most) the request: skip a coroutine per dependency
                sub_values = {sub.request_name: ctx.request} if sub.request_name else {}
            else:
                sub_values, sub_problems = await sub.solve(ctx)
                if sub_problems:
                    problems.extend(sub_problems)
                    continue
            call = sub.call
            if sub.use_cache and call in ctx.cache:
                solved = ctx.cache[call]
            else:
                assert call is not None
                solved = await call(**sub_values)
            if sub.name is not None:
                values[sub.name] = solved
            ctx.cache.setdefault(call, solved)
        for fields, simple, where in self.groups:
            source = _source(ctx, where)
            found = _simple_values(simple, source) if simple is not None else None
            if found is None:
                found, wrong = request_params_to_args(fields, source)
                problems.extend(wrong)
            values.update(found)
        if self.body is not None:
            fields, embed = self.body
            found = None
            if self.body_simple and ctx.body is not PydanticUndefined:
                value, wrong = fields[0].validate(ctx.body, {}, loc=("body",))
                found = None if wrong else {fields[0].name: value}
            if found is None:
                found, wrong = await request_body_to_args(
                    body_fields=fields, received_body=ctx.body, embed_body_fields=embed
                )
                problems.extend(wrong)
            values.update(found)
        if self.request_name:
            values[self.request_name] = ctx.request
        return values, problems


_NO_QUERY: dict[str, str] = {}


def _source(ctx: _Context, where: str) -> Any:
    if where == "path":
        return ctx.path_params
    if where == "query":
        query = ctx.scope["query_string"]
        return QueryParams(query) if query else _NO_QUERY
    return Headers(scope=ctx.scope)


def _simple_values(params: list[_Param], source: Any) -> dict[str, Any] | None:
    """The values when every parameter is valid, else None (FastAPI's code answers)."""
    values: dict[str, Any] = {}
    for param in params:
        value = source.get(param.key)
        if value is None:
            if param.default is PydanticUndefined:
                return None
            values[param.field.name] = param.default
            continue
        valid, wrong = param.field.validate(value, values, loc=param.loc)
        if wrong:
            return None
        values[param.field.name] = valid
    return values


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
                await self.app(scope, _replay(raw, receive), send)
                return
        scope["route"] = served.route
        scope["endpoint"] = served.route.endpoint
        scope["path_params"] = params
        response = await _respond(scope, receive, served, params, body)
        await response(scope, receive, send)


async def _respond(
    scope: Scope, receive: Receive, served: Served, params: dict[str, Any], body: Any
) -> Response:
    ctx = _Context(scope, Request(scope, receive), params, body, {})
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


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


def _parse(scope: Scope, raw: bytes, strict_content_type: bool) -> Any:
    """The body as FastAPI would hand it to validation; `_Forward` when unsure.

    JSON that orjson refuses (malformed, NaN, a BOM, UTF-16...) or reads other
    than `json.loads` could (any number it made a float) goes to FastAPI, which
    parses it with `json.loads` and answers for it.
    """
    if not raw:
        return PydanticUndefined
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
