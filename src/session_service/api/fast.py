"""A lean dispatcher for the hottest routes, in front of FastAPI's router.

FastAPI's routing and dependency solving cost more per request than the Redis
round trip itself. For the calls the browser extension and the agent make on
every chat turn, this middleware matches the path itself and calls the *same*
endpoint functions the FastAPI routes declare, with the same validation, so the
OpenAPI document (generated from those routes) still describes them exactly.
Anything it does not recognise goes to FastAPI unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from session_service import errors
from session_service.api import deps
from session_service.api.handlers import error_response, unknown_session, validation_response
from session_service.api.identity import Principal
from session_service.api.routes import messages, sessions
from session_service.domain import models
from session_service.store.errors import translate

logger = logging.getLogger("session_service.api")

PREFIX = "/api/v1/sessions"
Handler = Callable[[Scope, Principal, str, bytes], Awaitable[Response]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _json_body(scope: Scope) -> bool:
    """Whether FastAPI would read the body as JSON: no Content-Type, or a JSON one.

    Anything else (text/plain, forms) goes to FastAPI, which refuses it: browsers send
    those cross-site without a CORS preflight.
    """
    value = _header(scope, b"content-type")
    if value is None:
        return True
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _parse(model: type[BaseModel], body: bytes) -> Any:
    return model.model_validate_json(body or b"null")


class FastPathMiddleware:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        # The declared routes, so metrics and logs see the same route templates.
        self.templates = {
            (method, getattr(route, "path", "")): route
            for route in routes
            for method in getattr(route, "methods", None) or ()
        }

        # Fixed paths such as /statistics belong to their own routes, not /{session_id}.
        self.literals = {
            path[len(PREFIX) + 1 :]
            for _, path in self.templates
            if path.startswith(PREFIX + "/") and "{" not in path
        }

    def _route(self, method: str, template: str) -> BaseRoute | None:
        return self.templates.get((method, template))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        match = self._match(scope["method"], scope["path"])
        if match is None or not _json_body(scope):
            await self.app(scope, receive, send)
            return
        template, handler, session_id = match
        scope["route"] = self._route(scope["method"], template)
        body = b""
        if scope["method"] == "POST":
            message = await receive()  # GuardMiddleware has buffered the whole body
            body = message.get("body", b"")
        try:
            response = await handler(scope, scope["state"]["principal"], session_id, body)
        except errors.ServiceError as exc:
            first = (
                await unknown_session(scope, session_id or None) if exc.status_code == 422 else None
            )
            response = error_response(first or exc)
        except RedisError as exc:
            response = error_response(translate(exc))
        await response(scope, receive, send)

    def _match(self, method: str, path: str) -> tuple[str, Handler, str] | None:
        if not path.startswith(PREFIX):
            return None
        rest = path[len(PREFIX) :]
        if rest == "":
            return (PREFIX, _create, "") if method == "POST" else None
        parts = rest.split("/")
        if parts[1] in self.literals:
            return None
        if len(parts) == 2 and method == "GET":
            return f"{PREFIX}/{{session_id}}", _get, parts[1]
        if len(parts) == 3 and method == "POST":
            if parts[2] == "messages":
                return f"{PREFIX}/{{session_id}}/messages", _append, parts[1]
            if parts[2] == "heartbeat":
                return f"{PREFIX}/{{session_id}}/heartbeat", _heartbeat, parts[1]
        return None


def _state(scope: Scope) -> Any:
    return scope["app"].state


async def _invalid(exc: ValidationError, scope: Scope, principal: Principal, sid: str) -> Response:
    """Body errors, after the session check (404 wins over 422), like the FastAPI route."""
    first = await unknown_session(scope, sid or None)
    if first is not None:
        return error_response(first)
    problems = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
    return validation_response(problems)


async def _create(scope: Scope, principal: Principal, _: str, body: bytes) -> Response:
    state = _state(scope)
    idem = await deps.idempotency_key(_header(scope, b"idempotency-key"))
    try:
        # No body, or JSON null, means "all defaults", as for the FastAPI route.
        empty = not body.strip() or body.strip() == b"null"
        model = models.SessionCreate() if empty else _parse(models.SessionCreate, body)
    except ValidationError as exc:
        return await _invalid(exc, scope, principal, "")
    return await sessions.create_session(principal, state.store, state.settings, idem, model)


async def _get(scope: Scope, principal: Principal, sid: str, _: bytes) -> Response:
    sid = await deps.session_id_param(sid)
    return await sessions.get_session(sid, principal, _state(scope).store, False, 100)


async def _append(scope: Scope, principal: Principal, sid: str, body: bytes) -> Response:
    state = _state(scope)
    sid = await deps.session_id_param(sid)
    idem = await deps.idempotency_key(_header(scope, b"idempotency-key"))
    try:
        model = _parse(models.MessageCreate, body)
    except ValidationError as exc:
        return await _invalid(exc, scope, principal, sid)
    return await messages.append_message(sid, model, principal, state.store, state.settings, idem)


async def _heartbeat(scope: Scope, principal: Principal, sid: str, _: bytes) -> Response:
    sid = await deps.session_id_param(sid)
    return await sessions.heartbeat(sid, principal, _state(scope).store)
