"""Response helpers: orjson bodies built once, and OpenAPI docs for error answers."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from session_service import errors
from session_service.domain.models import ErrorBody

JSON = "application/json"


class JSONBody(Response):
    """A JSON response serialized once with orjson; never re-validated."""

    media_type = JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200, headers: Any = None) -> JSONBody:
    return JSONBody(content, status_code=status_code, headers=headers)


# Every /api/ route can answer with these (identity, gateway, body, rate, storage).
COMMON_API_ERRORS: tuple[type[errors.ServiceError], ...] = (
    errors.MissingIdentity,
    errors.InvalidIdentity,
    errors.AmbiguousIdentity,
    errors.InvalidRoles,
    errors.UntrustedCaller,
    errors.InvalidRequest,
    errors.RateLimited,
    errors.StorageUnavailable,
    errors.StorageFull,
)
BODY_ERRORS: tuple[type[errors.ServiceError], ...] = (
    errors.RequestTimeout,
    errors.RequestTooLarge,
)


def error_responses(
    *extra: type[errors.ServiceError], body: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry for the errors a route can answer with."""
    classes = [*COMMON_API_ERRORS, *(BODY_ERRORS if body else ()), *extra]
    by_status: dict[int, list[type[errors.ServiceError]]] = {}
    for cls in classes:
        by_status.setdefault(cls.status_code, []).append(cls)
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        group = by_status[status]
        codes = ", ".join(f"`{cls.code}`" for cls in group)
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": f"{codes}: " + "; ".join(cls.default_detail for cls in group),
        }
        if any(cls in (errors.RateLimited, errors.StorageUnavailable) for cls in group):
            entry["headers"] = {
                "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
            }
        if errors.PreconditionFailed in group:
            entry["headers"] = ETAG_HEADER
        out[status] = entry
    return out


ETAG_HEADER = {
    "ETag": {
        "description": "The session's ETag (the messages collection's on message routes); "
        "send it back in If-Match or If-None-Match",
        "schema": {"type": "string"},
    }
}


def tagged_responses(
    status: int = 200, *, not_modified: bool = False, **entry: Any
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for a response that carries an ETag (and its 304)."""
    out: dict[int | str, dict[str, Any]] = {status: {**entry, "headers": ETAG_HEADER}}
    if not_modified:
        out[304] = {"description": "Not modified (If-None-Match): no body", "headers": ETAG_HEADER}
    return out
