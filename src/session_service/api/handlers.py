"""Exception handlers: every failure becomes `{detail, code}` with one status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from session_service import errors
from session_service.api.conditional import precondition_failure
from session_service.api.responses import json_response
from session_service.api.routing import allowed_methods, routes_in_order
from session_service.domain.ids import is_session_id
from session_service.store import translate

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def error_response(exc: errors.ServiceError) -> Response:
    return json_response(exc.body(), exc.status_code, headers=exc.headers or None)


def _batch_index(error: dict[str, Any]) -> int | None:
    """The message a problem of a batch append's body is in (`body.messages.<i>...`)."""
    loc = tuple(error.get("loc", ()))
    if len(loc) > 2 and loc[:2] == ("body", "messages") and type(loc[2]) is int:
        return loc[2]
    return None


def _describe(error: dict[str, Any]) -> str:
    parts = [str(part) for part in error.get("loc", ()) if part != "body"]
    index = _batch_index(error)
    if index is not None:  # messages[3].content, as batch errors name their message
        parts[:2] = [f"messages[{index}]"]
    location = ".".join(parts)
    message = str(error.get("msg", "invalid"))
    return f"{location}: {message}" if location else message


async def unknown_session(scope: Scope) -> errors.ServiceError | None:
    """The 404 a request for an unknown (or another user's) session gets, if any, then
    the 412 of a failed If-Match (issue 14's order: the precondition before the request)."""
    session_id = scope.get("path_params", {}).get("session_id")
    if not isinstance(session_id, str):
        return None
    if not is_session_id(session_id):
        return errors.SessionNotFound()
    principal = scope.get("state", {}).get("principal")
    if principal is None:
        return None
    try:
        exists = await scope["app"].state.store.exists(principal.user_id, session_id)
        if not exists:
            return errors.SessionNotFound()
        return await precondition_failure(scope, principal.user_id, session_id)
    except RedisError as redis_exc:
        return translate(redis_exc)


async def refused(scope: Scope, exc: errors.ServiceError | RequestValidationError) -> Response:
    """The answer to a refused request, on the FastAPI path and the fast path alike.

    This is where "the session is checked before the request" lives: when the
    request itself is at fault (validation, a too-large message, a reused
    Idempotency-Key), an unknown session still answers 404. The check only runs
    on that path, so valid requests never pay for it.
    """
    if isinstance(exc, RequestValidationError) or exc.about_request:
        first = await unknown_session(scope)
        if first is not None:
            return error_response(first)
    if isinstance(exc, RequestValidationError):
        return validation_response(exc.errors())
    return error_response(exc)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ServiceError)
    return await refused(request.scope, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return await refused(request.scope, exc)


def validation_response(problems: Any) -> Response:
    """422 `validation_error` naming the failing fields (pydantic error dicts)."""
    problems = list(problems)
    detail = "; ".join(_describe(e) for e in problems[:5]) or "invalid request"
    body: dict[str, Any] = {
        "detail": detail,
        "code": "validation_error",
        "errors": _jsonable(problems[:20]),
    }
    index = _batch_index(problems[0]) if problems else None
    if index is not None:
        body["index"] = index  # the first message at fault (pydantic checks them in order)
    return json_response(body, 422)


def _jsonable(problems: Any) -> list[dict[str, Any]]:
    out = []
    for problem in problems:
        out.append(
            {
                "loc": [str(part) for part in problem.get("loc", ())],
                "msg": str(problem.get("msg", "")),
                "type": str(problem.get("type", "")),
            }
        )
    return out


async def _redis_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RedisError)
    return error_response(translate(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers: Mapping[str, str] | None = exc.headers
    if exc.status_code == 405:
        # Every method served on this path; Starlette's 405 names only the first route's.
        headers = {"Allow": allowed_methods(routes_in_order(request.app), request.scope)}
    return json_response(
        {"detail": str(exc.detail), "code": code}, exc.status_code, headers=headers
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Not logged here: Starlette re-raises the exception after this answer and
    # EdgeMiddleware logs it once, with the request id.
    return json_response({"detail": "Internal error", "code": "internal_error"}, 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
