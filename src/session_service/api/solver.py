"""FastAPI's dependency solving, for the subset of features the service's routes use.

`Plan` compiles a route's `Dependant` tree once; `Plan.solve` fills the endpoint's
keyword arguments in `solve_dependencies`' order. Valid scalar parameters are
validated by their own field; whenever a group has a problem, FastAPI's own
`request_params_to_args` / `request_body_to_args` redo it, so error lists are
FastAPI's by construction. `check` refuses a tree using anything else (the fast
path then leaves the route to FastAPI).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from fastapi import params
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from pydantic_core import PydanticUndefined
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.types import Receive, Scope


class Unsupported(Exception):
    """A route uses something the lean solver does not do exactly like FastAPI."""


def check(dependant: Dependant) -> None:
    if dependant.call is None or not inspect.iscoroutinefunction(dependant.call):
        raise Unsupported("only async callables (no generators, no thread pool)")
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
        raise Unsupported("cookies, websockets, responses, background tasks, security")
    for sub in dependant.dependencies:
        check(sub)


@dataclass(slots=True)
class Context:
    scope: Scope
    receive: Receive
    path_params: dict[str, Any]
    body: Any
    cache: dict[Any, Any]
    headers: dict[str, str] | None = None
    _request: Request | None = None

    @property
    def request(self) -> Request:
        """One Request per request, as FastAPI makes, built only when something takes it."""
        if self._request is None:
            self._request = Request(self.scope, self.receive)
        return self._request


#: Dependencies that only read the scope (`request.scope[...]`, `request.app.state...`),
#: by their function: the solver reads the value directly instead of building a
#: Request and running a coroutine for it. Filled by the module defining them (deps.py).
SCOPE_READERS: dict[Callable[..., Any], Callable[[Scope], Any]] = {}


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
    # A plain `str` (or `str | None`) with no constraints: a received str validates to
    # itself, so validating it again would only cost time.
    passthrough: bool = False


_PLAIN_STR = (str, str | None)


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
        where = info.in_.value  # type: ignore[attr-defined]
        # Headers are looked up case-insensitively, by their lowercase name (_lookup).
        lookup = key.lower() if where == "header" else key
        passthrough = info.annotation in _PLAIN_STR and not info.metadata
        simple.append(_Param(field, lookup, (where, key), default, passthrough))
    return simple


class Plan:
    """One dependant, compiled: what to solve and how, in FastAPI's order."""

    __slots__ = (
        "body",
        "body_simple",
        "call",
        "groups",
        "leaf",
        "name",
        "reader",
        "request_name",
        "subs",
        "use_cache",
    )

    def __init__(self, dependant: Dependant, embed_body: bool) -> None:
        self.call = dependant.call
        self.name = dependant.name
        self.use_cache = dependant.use_cache
        self.subs = [Plan(sub, embed_body) for sub in dependant.dependencies]
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
        self.reader = SCOPE_READERS.get(self.call) if self.leaf else None  # type: ignore[arg-type]

    async def solve(self, ctx: Context) -> tuple[dict[str, Any], list[Any]]:
        """FastAPI's `solve_dependencies` for the subset `check` admits, in its order.

        Valid values are validated by each field as FastAPI does; as soon as a
        group has a problem, FastAPI's own function redoes that group, so error
        lists are FastAPI's by construction.
        """
        values: dict[str, Any] = {}
        problems: list[Any] = []
        for sub in self.subs:
            if sub.reader is not None:
                solved = sub.reader(ctx.scope)
            else:
                solved = await sub.run(ctx, problems)
                if solved is _FAILED:
                    continue
            if sub.name is not None:
                values[sub.name] = solved
        for fields, simple, where in self.groups:
            found = _simple_values(simple, _lookup(ctx, where)) if simple is not None else None
            if found is None:
                found, wrong = request_params_to_args(fields, _source(ctx, where))
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

    async def run(self, ctx: Context, problems: list[Any]) -> Any:
        """This dependency's value (cached per request as FastAPI does), or `_FAILED`
        after adding its parameters' problems to `problems`."""
        if self.leaf:  # only (at most) the request: skip a coroutine per dependency
            sub_values = {self.request_name: ctx.request} if self.request_name else {}
        else:
            sub_values, sub_problems = await self.solve(ctx)
            if sub_problems:
                problems.extend(sub_problems)
                return _FAILED
        call = self.call
        if self.use_cache and call in ctx.cache:
            solved = ctx.cache[call]
        else:
            assert call is not None
            solved = await call(**sub_values)
        ctx.cache.setdefault(call, solved)
        return solved


_FAILED = object()


_NO_QUERY: dict[str, str] = {}


def _source(ctx: Context, where: str) -> Any:
    if where == "path":
        return ctx.path_params
    if where == "query":
        query = ctx.scope["query_string"]
        return QueryParams(query) if query else _NO_QUERY
    return Headers(scope=ctx.scope)


def _lookup(ctx: Context, where: str) -> Any:
    """`_source` for `_simple_values`: headers as a plain dict, built once per request.

    Starlette's `Headers.get` scans the header list and raises KeyError for every
    absent header (a conditional header is absent on most requests). ASGI header
    names are lowercase and the first of repeated headers wins, as in `Headers`.
    """
    if where != "header":
        return _source(ctx, where)
    if ctx.headers is None:
        headers: dict[str, str] = {}
        for name, value in ctx.scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        ctx.headers = headers
    return ctx.headers


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
        if param.passthrough and type(value) is str:
            values[param.field.name] = value
            continue
        valid, wrong = param.field.validate(value, values, loc=param.loc)
        if wrong:
            return None
        values[param.field.name] = valid
    return values
