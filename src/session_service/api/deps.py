"""Small typed dependencies: the caller, the store, the settings, validated ids.

All are `async def`: FastAPI runs plain `def` dependencies in a thread pool,
which costs more than everything else a request does.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from session_service import errors
from session_service.api import conditional
from session_service.api.identity import Principal
from session_service.api.solver import SCOPE_READERS
from session_service.config import Settings
from session_service.domain.ids import is_session_id
from session_service.integrations.case_service import CaseServiceClient
from session_service.store import FeedHub, SessionStore

# Printable ASCII; no leading or trailing space, which HTTP would strip anyway.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$")


async def get_principal(request: Request) -> Principal:
    # GuardMiddleware has already validated the identity of every /api/ request.
    principal: Principal = request.scope["state"]["principal"]
    return principal


async def get_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_feed(request: Request) -> FeedHub:
    feed: FeedHub = request.app.state.feed
    return feed


async def get_case_service(request: Request) -> CaseServiceClient:
    client: CaseServiceClient = request.app.state.case_service
    return client


async def session_id_param(
    session_id: Annotated[
        # No max_length: a malformed id of any length is an unknown session (404), not a 422.
        str,
        Path(
            description="Session id: `sess_` + 32 hex characters, or the lower-case UUID of "
            "a session imported from the original service"
        ),
    ],
) -> str:
    """A malformed id is simply an unknown session: 404 before any storage call."""
    if not is_session_id(session_id):
        raise errors.SessionNotFound()
    return session_id


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            # Documented here, checked below: one error shape on every code path.
            json_schema_extra={"pattern": _IDEMPOTENCY_KEY.pattern},
            description="1-255 printable characters; a retry with the same key returns the "
            "original response and writes nothing new (24 hours)",
        ),
    ] = None,
) -> str | None:
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise errors.InvalidRequest(
            "Idempotency-Key must be 1-255 printable characters", field="Idempotency-Key"
        )
    return key


_IF_MATCH_DOC = (
    "Write only if the {what} still has this ETag (or any of a comma-separated list); "
    "`*` means it exists. Otherwise 412 `precondition_failed` with the current ETag"
)
_IF_NONE_MATCH_DOC = (
    "Write only if the {what} no longer has this ETag (nor any of a comma-separated list, "
    "compared weakly); `*` always fails on an existing session. Otherwise 412 "
    "`precondition_failed` with the current ETag"
)
_MESSAGES = "messages collection (the ETag of GET .../messages or of the last append)"


async def session_if_match(
    request: Request,
    value: Annotated[
        str | None, Header(alias="If-Match", description=_IF_MATCH_DOC.format(what="session"))
    ] = None,
    none: Annotated[
        str | None,
        Header(alias="If-None-Match", description=_IF_NONE_MATCH_DOC.format(what="session")),
    ] = None,
) -> str:
    arg = conditional.precondition_arg(value, none)
    conditional.remember(request.scope, "s", arg)
    return arg


async def messages_if_match(
    request: Request,
    value: Annotated[
        str | None,
        Header(alias="If-Match", description=_IF_MATCH_DOC.format(what=_MESSAGES)),
    ] = None,
    none: Annotated[
        str | None,
        Header(alias="If-None-Match", description=_IF_NONE_MATCH_DOC.format(what=_MESSAGES)),
    ] = None,
) -> str:
    arg = conditional.precondition_arg(value, none)
    conditional.remember(request.scope, "m", arg)
    return arg


async def read_if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="412 `precondition_failed` (with the current ETag) unless the "
            "resource still has this ETag (or any of a comma-separated list); `*` means it "
            "exists. Checked before If-None-Match",
        ),
    ] = None,
) -> str:
    return conditional.if_match_arg(value)


conditional.IF_MATCH_KINDS.update({session_if_match: "s", messages_if_match: "m"})


async def if_none_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="304 with no body while the ETag is still this one (or `*`)",
        ),
    ] = None,
) -> str | None:
    return value


# The fast path reads these from the scope without a coroutine (api/solver.py); each
# reader is its dependency's body, spelled on the scope.
SCOPE_READERS.update(
    {
        get_principal: lambda scope: scope["state"]["principal"],
        get_store: lambda scope: scope["app"].state.store,
        get_settings: lambda scope: scope["app"].state.settings,
        get_case_service: lambda scope: scope["app"].state.case_service,
        get_feed: lambda scope: scope["app"].state.feed,
    }
)

UserDep = Annotated[Principal, Depends(get_principal)]
StoreDep = Annotated[SessionStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
FeedDep = Annotated[FeedHub, Depends(get_feed)]
CaseServiceDep = Annotated[CaseServiceClient, Depends(get_case_service)]
SessionIdDep = Annotated[str, Depends(session_id_param)]
IdempotencyKeyDep = Annotated[str | None, Depends(idempotency_key)]
SessionIfMatchDep = Annotated[str, Depends(session_if_match)]
MessagesIfMatchDep = Annotated[str, Depends(messages_if_match)]
IfNoneMatchDep = Annotated[str | None, Depends(if_none_match)]
ReadIfMatchDep = Annotated[str, Depends(read_if_match)]
