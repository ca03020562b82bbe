"""The application factory and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from session_service import __version__
from session_service.api import handlers
from session_service.api.confirmed import ConfirmedReadsMiddleware
from session_service.api.fast import FastPathMiddleware
from session_service.api.middleware import EdgeMiddleware, GuardMiddleware, OriginGate
from session_service.api.routes import (
    admin,
    branches,
    cases,
    events,
    health,
    messages,
    prompt,
    sessions,
)
from session_service.api.routing import HeadMiddleware, routes_in_order
from session_service.config import SessionLimitPolicy, Settings, load_settings
from session_service.integrations.case_service import CaseServiceClient
from session_service.observability import metrics
from session_service.store.cancellation import raise_if_cancelled
from session_service.store.connection.client import build_client, describe
from session_service.store.embedded import EmbeddedServer
from session_service.store.feed import FeedHub
from session_service.store.keys import Keys
from session_service.store.lease import Lease
from session_service.store.records import Limits
from session_service.store.sessions import SessionStore

logger = logging.getLogger("session_service")

EVICTING_POLICIES = ("allkeys-", "volatile-")


def build_store(settings: Settings, url: str | None) -> SessionStore:
    limits = Limits(
        max_sessions_per_user=settings.max_sessions_per_user,
        max_messages_per_session=settings.max_messages_per_session,
        archived_ttl_ms=settings.archived_session_ttl * 1000,
        idempotency_ttl_ms=settings.idempotency_ttl_seconds * 1000,
        evict_oldest=settings.session_limit_policy is SessionLimitPolicy.EVICT_OLDEST,
        max_cases_per_session=settings.max_cases_per_session,
    )
    return SessionStore(
        build_client(settings, url),
        Keys(settings.key_prefix),
        limits,
        min_replicas_ack=settings.redis_min_replicas_ack,
        replica_ack_timeout_ms=settings.redis_replica_ack_timeout_ms,
        confirmed_reads=settings.redis_confirmed_reads,
    )


async def _warn_if_evicting(store: SessionStore, embedded: bool) -> None:
    if embedded:
        return
    try:
        async with asyncio.timeout(3):
            policy = await store.eviction_policy()
    except Exception:
        return
    if policy and policy.startswith(EVICTING_POLICIES):
        logger.warning(
            "Redis maxmemory-policy is %s: Redis may evict session data under memory "
            "pressure; set maxmemory-policy noeviction",
            policy,
        )


def _log_storage(settings: Settings, name: str, mode: str) -> None:
    """The start line: which store, and which settings chose it."""
    if not settings.embedded:
        ignored = settings.ignored_redis_settings
        note = f"; {', '.join(ignored)} ignored" if ignored else ""
        logger.info("storage: %s (%s) from %s%s", name, mode, settings.redis_source, note)
        return
    data_dir = settings.data_dir.resolve()
    if settings.environment == "production":
        logger.warning(
            "storage: embedded server in DATA_DIR=%s, because no REDIS_URL or REDIS_HOST is "
            "set: the data stays in this container, invisible to other instances and lost "
            "with the container unless DATA_DIR is a persistent volume",
            data_dir,
        )
    else:
        logger.info("storage: embedded server in DATA_DIR=%s (%s)", data_dir, name)


async def _cleanup_loop(store: SessionStore, interval: int) -> None:
    """The background cleanup: once per interval across every worker and instance.

    Every process tries to take the lease at random points (the jitter keeps them
    from all asking at once); the one that gets it runs the cleanup, and the lease
    keeps the others off for `interval` from that start.
    """
    lease = Lease(store.client, store.keys.lease("cleanup"), interval * 1000)
    while True:
        raise_if_cancelled()  # a swallowed cancellation ends the loop too (cancellation.py)
        await asyncio.sleep(interval * random.uniform(0.25, 0.75))
        try:
            if not await lease.acquire():
                continue
            metrics.CLEANUP_RUNS.inc()
            removed, _ = await lease.run_held(store.cleanup_all)
            if removed:
                logger.info("cleanup removed %d expired sessions from the indexes", removed)
        except Exception as exc:
            raise_if_cancelled()  # else a shutdown waits for this loop forever
            logger.warning("cleanup failed: %s", type(exc).__name__)


def _end_feeds_on_exit_signal(hub: FeedHub) -> Callable[[], None]:
    """Let SIGTERM (and SIGINT) end every change feed at once; answers the undo.

    uvicorn stops accepting on the signal, but runs the lifespan's shutdown only
    once every connection has closed, and a feed never closes by itself: without
    this, each would hold the shutdown for SHUTDOWN_GRACE_SECONDS and then be cut
    without a retry hint. uvicorn's handler (a method of its server) is wrapped, and
    uvicorn puts the previous handlers back when it stops serving.
    """
    loop = asyncio.get_running_loop()
    wrapped: list[tuple[int, Any, Any]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not hasattr(getattr(previous, "__self__", None), "should_exit"):
            continue  # not uvicorn's server (tests, another runner): nothing to wrap

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(hub.shutdown)
            previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread
            continue
        wrapped.append((sig, handler, previous))

    def undo() -> None:
        for sig, handler, previous in wrapped:
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return undo


class ServiceApp(FastAPI):
    """FastAPI with the service's own middleware chain in front of Starlette's stack.

    Starlette nests user middleware inside its error middleware, and FastAPI adds
    body-limit and telemetry layers of its own; the hot routes need none of them.
    `edge` wraps the whole stack: request id, logs and metrics, then CORS, the
    guard and the fast path; everything else continues into the usual stack.
    """

    edge: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return self.edge(inner) if self.edge is not None else inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Requests go straight to the stack, as Starlette does.

        Recent FastAPI versions ask OpenTelemetry on every request whether a tracer
        or meter provider is configured (environment lookups included): about 6% of
        a get's CPU in a py-spy profile. The service exports Prometheus metrics and
        JSON logs, not OpenTelemetry, so only lifespan and websockets take FastAPI's
        own path.
        """
        if scope["type"] == "http" and self.middleware_stack is not None:
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


_gc_frozen = False


def _freeze_startup_objects() -> None:
    """Everything built at start-up (routes, models, pools) lives as long as the process.

    Freezing it keeps the cyclic GC from re-scanning ~90k objects on every full
    collection, which otherwise shows up as 40 ms stalls in the p99 latency. Once per
    process: a process that builds many apps (the tests) must not pin them all.
    """
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """One app per call; process-wide set-up (logging) belongs to the entry points."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        embedded: EmbeddedServer | None = None
        url = settings.redis_connection_url
        if settings.embedded:
            # With several workers the CLI started it already: start() then reuses it
            # (one DATA_DIR, one owner) and stop() leaves it to its owner.
            embedded = EmbeddedServer(settings.data_dir, settings.embedded_appendfsync)
            url = await asyncio.to_thread(embedded.start)
        store = build_store(settings, url)
        case_service = CaseServiceClient(settings.case_service_url, settings.case_service_timeout)
        mode = "embedded" if settings.embedded else settings.redis_mode.value
        app.state.store = store
        app.state.case_service = case_service
        app.state.storage_mode = mode
        app.state.storage_name = describe(settings, url)
        feed = FeedHub(
            store,
            heartbeat=settings.events_heartbeat_seconds,
            max_per_user=settings.max_watchers_per_user,
            max_per_worker=settings.max_watchers_per_worker,
        )
        feed.start()
        app.state.feed = feed
        undo_signals = _end_feeds_on_exit_signal(feed)
        _log_storage(settings, app.state.storage_name, mode)
        if settings.gateway_shared_secret is None and settings.environment == "production":
            logger.warning(
                "GATEWAY_SHARED_SECRET is unset in production: any caller that reaches this "
                "service can claim any X-User-ID"
            )
        tasks = [asyncio.create_task(_warn_if_evicting(store, settings.embedded))]
        if settings.cleanup_interval_seconds > 0:
            tasks.append(
                asyncio.create_task(_cleanup_loop(store, settings.cleanup_interval_seconds))
            )
        _freeze_startup_objects()
        try:
            yield {}
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            undo_signals()
            await feed.close()
            await case_service.aclose()
            await store.close()
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    app = ServiceApp(
        title="fm-session-service",
        version=settings.service_version or __version__,
        description=(
            "Troubleshooting sessions and their conversations for FaultMaven. Every /api/ "
            "request needs the X-User-ID header set by the API gateway."
        ),
        lifespan=lifespan,
    )
    handlers.install(app)
    for router in (
        health.router,
        admin.router,
        sessions.router,
        messages.router,
        events.router,
        prompt.router,
        branches.router,
        cases.router,
    ):
        app.include_router(router)

    def edge(inner: ASGIApp) -> ASGIApp:
        routes = routes_in_order(app)
        if settings.fast_path:
            inner = FastPathMiddleware(inner, routes=routes)
        inner = HeadMiddleware(inner, routes)
        if settings.redis_confirmed_reads:
            inner = ConfirmedReadsMiddleware(inner)
        guarded = GuardMiddleware(
            inner,
            gateway_secret=settings.gateway_shared_secret,
            max_request_bytes=settings.max_request_bytes,
            body_timeout=settings.request_body_timeout,
            rate_limit_per_minute=settings.rate_limit_per_minute,
        )
        cors = CORSMiddleware(
            guarded,
            allow_origins=settings.cors_origins,
            # Browsers reject credentials with "*"; never send both.
            allow_credentials=not settings.wildcard_cors,
            allow_methods=["*"],
            allow_headers=["*"],
            # ETag too: a web client needs it for If-Match / If-None-Match (issue 14).
            expose_headers=["X-Request-ID", "Retry-After", "ETag"],
        )
        return EdgeMiddleware(
            OriginGate(cors, guarded),
            access_log_enabled=settings.access_log,
            metrics_on=settings.metrics_enabled,
        )

    app.edge = edge
    # Settings exist before the lifespan; the resources built from them live in it.
    app.state.settings = settings
    return app
