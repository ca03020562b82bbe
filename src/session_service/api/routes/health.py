"""Service info, liveness, readiness and metrics: open to every caller."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from session_service.api.responses import json_response
from session_service.domain import models
from session_service.observability.metrics import CONTENT_TYPE, render

router = APIRouter(tags=["operations"])


@router.get(
    "/",
    summary="Service information",
    description="Name, version, environment and where the API documents are.",
    response_model=models.ServiceInfo,
)
async def root(request: Request) -> Response:
    s = request.app.state.settings
    return json_response(
        {
            "service": s.service_name,
            "version": s.service_version,
            "environment": s.environment,
            "docs": "/docs",
            "openapi": "/openapi.json",
            "storage_mode": request.app.state.storage_mode,
        }
    )


@router.get(
    "/health",
    summary="Liveness",
    description="Answers 200 while the process serves HTTP; never touches storage.",
    response_model=models.Health,
)
async def health(request: Request) -> Response:
    s = request.app.state.settings
    return json_response({"status": "ok", "service": s.service_name, "version": s.service_version})


@router.get(
    "/ready",
    summary="Readiness",
    description="200 when storage answers a PING, else 503 with Retry-After.",
    response_model=models.Readiness,
    responses={
        503: {
            "model": models.Readiness,
            "description": "Storage is unreachable",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        }
    },
)
async def ready(request: Request) -> Response:
    state = request.app.state
    try:
        latency: float | None = round(await state.store.ping(), 3)
        status, code, headers = "ready", 200, None
    except Exception:  # any failure to answer is "not ready"
        latency, status, code, headers = None, "unavailable", 503, {"Retry-After": "1"}
    body = {
        "status": status,
        "storage": state.storage_name,
        "storage_mode": state.storage_mode,
        "latency_ms": latency,
    }
    return json_response(body, code, headers=headers)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Request counts and latencies by route template, storage operation latency "
    "and errors, session and message counters (Prometheus text format).",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics_endpoint() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
