"""How a request finds its routes: the router's order, the Allow list, and HEAD.

HEAD is answered wherever GET is (RFC 9110 §9.3.2): `HeadMiddleware` hands a HEAD
request for which no route declares HEAD to the app as the GET it stands for, and
drops the body from the answer, so status and headers (ETag, Content-Length
included) are the GET's by construction, on the fast path and FastAPI's alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def routes_in_order(app: FastAPI) -> list[BaseRoute]:
    """Every route of the app, in the order its router tries them.

    Recent FastAPI versions keep included routers as nested entries; their
    effective routes are what the router matches. A route whose effective path
    differs from its own (a prefix given at inclusion) is kept as the effective
    context, which the fast path never serves but still matches in order.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are flattened
        return list(app.router.routes)
    routes: list[BaseRoute] = []
    for context in iter_route_contexts(app.router.routes):
        original = context.original_route
        same = getattr(original, "path", None) == context.path
        routes.append(original if same else context)  # type: ignore[arg-type]
    return routes


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The methods of the resource the request's path names (for Allow), HEAD wherever
    GET is: those of every route with the path template of the first route, in the
    router's order, that matches the path. `/sessions/cleanup` is the cleanup resource
    (POST), although `/sessions/{session_id}` would also match it."""
    template: str | None = None
    methods: set[str] = set()
    for route in routes:
        path = getattr(route, "path", None)
        if template is None and route.matches(scope)[0] is not Match.NONE:
            template = path
        if template is not None and path == template:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


class HeadMiddleware:
    """HEAD as the GET it stands for, without the body, unless a route declares HEAD."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get: dict[str, Any] = {**scope, "method": "GET"}
        if not self._as_get(scope, as_get):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # shared with the GET's scope, as a dict
        as_get["state"] = scope["state"]

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(as_get, receive, without_body)
        finally:
            if "route" in as_get:  # the route template labels logs and metrics
                scope["route"] = as_get["route"]

    def _as_get(self, head: Scope, get: Scope) -> bool:
        """Whether the router, in its order, meets a GET route before one declaring HEAD
        (Starlette's Route adds HEAD to GET; the light HEAD of a session is its own)."""
        for route in self.routes:
            if route.matches(head)[0] is Match.FULL:
                return False
            if route.matches(get)[0] is Match.FULL:
                return True
        return False  # nothing serves GET here either: the router's 404 or 405
