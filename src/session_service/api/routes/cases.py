"""Links between a session and fm-case-service cases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from session_service import errors
from session_service.api.deps import CaseServiceDep, SessionIdDep, StoreDep, UserDep
from session_service.api.responses import error_responses, json_response
from session_service.domain import models

router = APIRouter(prefix="/api/v1/sessions/{session_id}/cases", tags=["cases"])
NOT_FOUND = errors.SessionNotFound


@router.post(
    "",
    summary="Link a case",
    description="Links a case to the session. Idempotent: linking again keeps the first link "
    "time. Works on archived sessions too. A session holds at most MAX_CASES_PER_SESSION links "
    "(409 `too_many_cases` for one more).",
    response_model=models.CaseLinkResult,
    responses=error_responses(NOT_FOUND, errors.TooManyCases, body=True),
)
async def link_case(
    session_id: SessionIdDep, body: models.CaseLinkRequest, user: UserDep, store: StoreDep
) -> Response:
    linked_at = await store.link_case(user.user_id, session_id, body.case_id)
    return json_response(
        {"session_id": session_id, "case_id": body.case_id, "linked": True, "linked_at": linked_at}
    )


@router.delete(
    "/{case_id}",
    summary="Unlink a case",
    description="Removes the link. Idempotent: unlinking a case that is not linked is a no-op.",
    status_code=204,
    response_class=Response,
    responses=error_responses(NOT_FOUND, body=True),
)
async def unlink_case(
    session_id: SessionIdDep,
    case_id: Annotated[str, Path(max_length=128)],
    user: UserDep,
    store: StoreDep,
) -> Response:
    await store.unlink_case(user.user_id, session_id, case_id)
    return Response(status_code=204)


@router.get(
    "",
    summary="List linked cases",
    description=(
        "The cases linked here, merged with what fm-case-service reports for this session. When "
        "the case service is unset, slow, down or failing, the local links are returned with "
        '`case_service: "unavailable"`.'
    ),
    response_model=models.CaseList,
    responses=error_responses(NOT_FOUND),
)
async def list_cases(
    session_id: SessionIdDep, user: UserDep, store: StoreDep, case_service: CaseServiceDep
) -> Response:
    links = await store.linked_cases(user.user_id, session_id)
    remote = await case_service.cases_for_session(user.user_id, session_id)
    merged: dict[str, dict[str, Any]] = {
        case_id: {"case_id": case_id, "linked": True, "linked_at": linked_at}
        for case_id, linked_at in links
    }
    for case in remote or []:
        entry = merged.setdefault(
            case["case_id"], {"case_id": case["case_id"], "linked": False, "linked_at": None}
        )
        for key, value in case.items():
            if key not in ("case_id", "linked", "linked_at"):
                entry[key] = value
    cases = list(merged.values())
    return json_response(
        {
            "session_id": session_id,
            "cases": cases,
            "total": len(cases),
            "case_service": "available" if remote is not None else "unavailable",
        }
    )
