"""Pure ASGI middleware: cheap per request, and it sees raw headers.

`EdgeMiddleware` (outermost) gives every request an id, times it, writes the
access line and the metrics. `GuardMiddleware` protects `/api/`: the gateway
token, the identity headers, the body's size and pace, and the rate limit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session_service import errors
from session_service.api.identity import check_gateway, principal_from_headers
from session_service.observability import metrics
from session_service.observability.logging import request_id_var, user_ref, write_access_line
from session_service.store import translate

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Label values must stay few: an unknown method is reported as OTHER.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# An error body's `code` becomes a label: only the shape every code has, the rest is "other".
_ERROR_CODE = re.compile(r"^[a-z][a-z_]{0,47}$")
_MAX_ERROR_BODY = 16384


def error_code(body: bytes) -> str:
    """The stable `code` of an error response's JSON body; "none" when it has none."""
    if len(body) > _MAX_ERROR_BODY:
        return "other"
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "none"
    code = parsed.get("code") if isinstance(parsed, dict) else None
    if not isinstance(code, str):
        return "none"
    return code if _ERROR_CODE.match(code) else "other"


async def send_error(send: Send, exc: errors.ServiceError, extra_headers: Any = ()) -> None:
    body = orjson.dumps(exc.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers.items()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_ids: tuple[int, str, Iterator[int]] = (0, "", itertools.count())


def _new_request_id() -> bytes:
    """Unique and cheap: a random per-process prefix (renewed after a fork) and a counter."""
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():
        pid, prefix, counter = os.getpid(), secrets.token_hex(8), itertools.count(1)
        _ids = (pid, prefix, counter)
    return f"{prefix}{next(counter):016x}".encode()


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, access_log_enabled: bool = True, metrics_on: bool = True):
        self.app = app
        self.access_log_enabled = access_log_enabled
        self.metrics_on = metrics_on
        self.in_flight = 0  # requests of this app being served now (one event loop)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _record(self, method: str, template: str, status: int, elapsed: float) -> None:
        # Resolving label children costs more than updating them; routes are few.
        key = (method, template, status)
        children = self._children.get(key)
        if children is None:
            children = (
                metrics.REQUESTS.labels(method, template, str(status)),
                metrics.LATENCY.labels(method, template),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)

    def _record_error(self, method: str, scope: Scope, status: int, body: bytes) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = method if method in _KNOWN_METHODS else "OTHER"
        metrics.ERRORS.labels(method, template, str(status), error_code(body)).inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value
                break
        if not _REQUEST_ID.match(request_id):
            request_id = _new_request_id()
        rid = request_id.decode()
        token = request_id_var.set(rid)
        # 499 (nginx's "client closed request") until a response starts: a client that
        # disconnects before its answer is not a server error and must not page anyone.
        status = 499
        started = time.perf_counter()
        self.in_flight += 1
        responded = error_counted = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded, error_counted
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            elif status >= 400 and not error_counted and self.metrics_on:
                # Errors are answered in one body message, whichever layer answers them.
                error_counted = True
                self._record_error(scope["method"], scope, status, message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last line of defence: log the traceback with the request id and
            # answer a JSON 500 unless an inner layer already answered.
            logging.getLogger("session_service.api").exception("unhandled error")
            if not responded:
                await send_error(send_with_id, errors.ServiceError())
        finally:
            self.in_flight -= 1
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            if self.metrics_on:
                self._record(method, template, status, elapsed)
            if self.access_log_enabled:
                principal = scope.get("state", {}).get("principal")
                user = user_ref(principal.user_id) if principal else None
                write_access_line(
                    method, template, status, elapsed * 1000, user, alone=not self.in_flight
                )
            request_id_var.reset(token)


class OriginGate:
    """Sends browser requests (with an Origin header) through CORS, the rest around it.

    The gateway and the agent service send no Origin; CORS has nothing to add for
    them, and skipping it is measurable on the hot routes.
    """

    def __init__(self, cors: ASGIApp, app: ASGIApp) -> None:
        self.cors = cors
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    await self.cors(scope, receive, send)
                    return
            await self.app(scope, receive, send)
            return
        await self.cors(scope, receive, send)


class _ClientGone(Exception):
    """The client disconnected before its body was complete."""


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        gateway_secret: str | None,
        max_request_bytes: int,
        body_timeout: float,
        rate_limit_per_minute: int,
    ) -> None:
        self.app = app
        self.secret = gateway_secret.encode() if gateway_secret else None
        self.max_bytes = max_request_bytes
        self.body_timeout = body_timeout
        self.rate_limit = rate_limit_per_minute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        try:
            headers = scope["headers"]
            if self.secret is not None:
                check_gateway(headers, self.secret)
            principal = principal_from_headers(headers)
            scope.setdefault("state", {})["principal"] = principal
            if scope["method"] in _BODY_METHODS:
                receive = await self._buffer_body(headers, receive)
            if self.rate_limit:
                await self._check_rate(scope, principal.user_id)
        except errors.ServiceError as exc:
            await send_error(send, exc)
            return
        except RedisError as exc:
            await send_error(send, translate(exc))
            return
        except _ClientGone:
            return  # nobody is left to answer
        await self.app(scope, receive, send)

    async def _buffer_body(self, headers: list[tuple[bytes, bytes]], receive: Receive) -> Receive:
        """Read the body up front: bounded in size and in time, before any handler runs."""
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    raise errors.InvalidRequest("Content-Length is not a number")
                if int(value) > self.max_bytes:
                    raise errors.RequestTooLarge()
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        # Half a body may parse as a whole one: never run it.
                        raise _ClientGone()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise errors.RequestTooLarge()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise errors.RequestTimeout() from None
        return replay(b"".join(chunks), receive)

    async def _check_rate(self, scope: Scope, user_id: str) -> None:
        store = scope["app"].state.store
        wait = await store.hit_rate_limit(user_id, self.rate_limit)
        if wait is not None:
            raise errors.RateLimited(wait)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out a body already read, whole, then defers to `receive`."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
