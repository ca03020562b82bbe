"""REDIS_CONFIRMED_READS: no answer shows what a failover could still take back.

Redis replicates asynchronously. With REDIS_MIN_REPLICAS_ACK alone, a write is
acknowledged only once replicas hold it, but a read on the master can still show
a write they do not hold yet (one that answered 503). If the master then fails,
that write is gone, and the next append is given the id the read showed: one id,
two messages, for the client that read it (a dirty read; the model checker found
it, docs/model-checking.md). With confirmed reads, every answer under /api/ is
held until the replicas confirm everything the user's node held when it was read.

The answer is read first and confirmed after, so the confirmation covers it: the
response's start is held until its first body message, and the barrier runs then,
if the request read Redis since its last confirmation (a write whose own WAIT ran
after a barrier has confirmed its answer already; a refused body read nothing).
The barrier must reach the server the answer was read from: a failover in between
is a 503 (store `confirm_reads`). A streamed answer (the change feed, an export)
confirms each chunk that carries data before it goes out (its events may have been
read by a shared task, so always); SSE comments and retry hints carry none. A chunk
that cannot be confirmed ends the stream (the client resumes from its last
event). 5xx answers show nothing and are sent as they are.
"""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session_service import errors
from session_service.api.middleware import send_error
from session_service.store import begin_ticket, translate


class ConfirmedReadsMiddleware:
    """Holds each /api/ answer until REDIS_MIN_REPLICAS_ACK replicas hold what it shows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = scope.get("state", {}).get("principal") if scope["type"] == "http" else None
        if principal is None or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        store = scope["app"].state.store
        user_id = principal.user_id
        ticket = begin_ticket()
        held: Message | None = None
        refused = False  # the confirmation failed before anything was sent: 503 sent
        unconfirmed = False  # a 5xx answer: it shows nothing, so it goes as it is

        async def confirmed_send(message: Message) -> None:
            nonlocal held, refused, unconfirmed
            if refused:
                return  # the inner answer was replaced by a 503
            if message["type"] == "http.response.start":
                if message["status"] >= 500:
                    unconfirmed = True
                    await send(message)
                else:
                    held = message
                return
            if message["type"] == "http.response.body" and not unconfirmed:
                if held is not None:
                    start, held = held, None
                    if not ticket.confirmed:
                        try:
                            await store.confirm_reads(user_id)
                        except (errors.ServiceError, RedisError) as exc:
                            refused = True
                            error = exc if isinstance(exc, errors.ServiceError) else translate(exc)
                            await send_error(send, error)
                            return
                    await send(start)
                elif _shows_data(message.get("body", b"")):
                    # A later chunk of a stream was read after the first was confirmed.
                    await store.confirm_reads(user_id)
            await send(message)

        await self.app(scope, receive, confirmed_send)


def _shows_data(chunk: bytes) -> bool:
    """A stream chunk that is not only an SSE comment (a heartbeat) or a retry hint."""
    return bool(chunk) and not chunk.startswith((b":", b"retry:"))
