"""`fm-session-service`: serve the API (default) and run admin tasks."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from session_legacy import DEFAULT_DB
from session_service import __version__
from session_service.config import Settings, load_settings
from session_service.domain.ids import is_session_id
from session_service.observability.logging import configure_logging

if TYPE_CHECKING:
    from session_service.store.sessions import SessionStore

# The store, the app (FastAPI, pydantic's adapters, every route) and uvicorn are imported
# by the commands that use them, not here: `--help`, `--version` and a refused setting
# answer without them (about 1 s of CPU per run, which the tests' subprocesses paid).

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: How long a worker may take to answer uvicorn's supervisor before it is restarted.
WORKER_HEALTHCHECK_SECONDS = 30


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fm-session-service",
        description="FaultMaven session service: serves the HTTP API (the default command) "
        "and runs admin tasks.\nConfiguration comes from the environment and .env (see the "
        "docs/configuration.md); flags override HOST, PORT\nand the worker count.",
        epilog="examples:\n"
        "  fm-session-service                               serve on HOST:PORT\n"
        "  fm-session-service serve --port 8001 --workers 2\n"
        "  fm-session-service cleanup\n"
        "  fm-session-service export SESSION_ID --user USER > transcript.json\n"
        "  fm-session-service erase-user USER\n"
        "  fm-session-service import-legacy --source redis://redis:6379 --db 1 --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def serve_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", help="bind address (default: HOST or 0.0.0.0)")
        p.add_argument("--port", type=int, help="port (default: PORT or 8001)")
        p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")

    serve_flags(parser)
    serve_flags(sub.add_parser("serve", help="serve the HTTP API (the default command)"))
    sub.add_parser(
        "cleanup", help="remove expired sessions from every user's indexes, with progress"
    )
    export = sub.add_parser("export", help="print a session's transcript as JSON")
    export.add_argument("session_id")
    export.add_argument("--user", required=True, help="the owner's user id")
    erase = sub.add_parser("erase-user", help="delete every session of a user")
    erase.add_argument("user_id")
    legacy = sub.add_parser(
        "import-legacy",
        help="import the original fm-session-service's sessions, with progress",
        description="Reads the original's session:{id} records from --source and writes each "
        "into this service's store (the configured REDIS_URL/REDIS_HOST or the embedded "
        "server), keeping its id. A second run changes nothing. Ends with a JSON summary.",
    )
    legacy.add_argument(
        "--source",
        required=True,
        metavar="REDIS_URL",
        help="the original's Redis, e.g. redis://:password@redis:6379",
    )
    legacy.add_argument(
        "--db",
        type=int,
        default=DEFAULT_DB,
        help="its database (default: 1, the original's; wins over a db in the URL)",
    )
    legacy.add_argument(
        "--dry-run", action="store_true", help="read and check everything, write nothing"
    )
    return parser


def _check_storage(settings: Settings) -> int:
    """Stop (2) when a given Redis setting is refused; an unreachable server only warns."""
    if settings.embedded:
        return 0
    from session_service.store.probe import unusable_setting

    problem, outage = asyncio.run(unusable_setting(settings, settings.redis_connection_url))
    if problem:
        print(f"fm-session-service: {problem}", file=sys.stderr)
        return 2
    if outage:
        logging.getLogger("session_service").warning(
            "storage not reachable at start (%s); /ready and the API answer 503 until it is",
            outage,
        )
    return 0


def serve(settings: Settings, host: str | None, port: int | None, workers: int) -> int:
    host = host or settings.host
    port = port or settings.port
    configure_logging(settings.log_level, settings.effective_log_format.value)
    if code := _check_storage(settings):
        return code
    common = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "server_header": False,
        # Identity comes from the gateway's headers; the client address is never read,
        # so uvicorn's X-Forwarded-For rewriting would be work for nothing.
        "proxy_headers": False,
    }
    import uvicorn

    if workers <= 1:
        from session_service.app import create_app

        app = create_app(settings)
        _exit_zero_after_sigterm()
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return 0
    embedded = None
    if settings.embedded:
        from session_service.store.embedded import EmbeddedServer

        # One server for all workers: the parent owns it, each worker finds it answering
        # on DATA_DIR's socket and reuses it (see EmbeddedServer.start).
        embedded = EmbeddedServer(settings.data_dir, settings.embedded_appendfsync)
        embedded.start()
    # Workers write their samples here and /metrics aggregates them; an operator's
    # own directory is kept, ours is removed on exit.
    own_metrics_dir = not os.environ.get(METRICS_DIR_ENV)
    if own_metrics_dir:
        os.environ[METRICS_DIR_ENV] = tempfile.mkdtemp(prefix="fm-session-metrics-")
    # uvicorn (0.31+) restarts a worker that misses its supervisor's health check, 5 s by
    # default: on a busy host a starting worker misses it, and restarts feed the load.
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        common["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
    try:
        _exit_zero_after_sigterm()
        uvicorn.run("session_service.main:app", workers=workers, **common)  # type: ignore[arg-type]
    finally:
        if embedded is not None:
            embedded.stop()
        if own_metrics_dir:
            shutil.rmtree(os.environ.pop(METRICS_DIR_ENV), ignore_errors=True)
    return 0


def _exit_zero_after_sigterm() -> None:
    """uvicorn re-raises SIGTERM once its graceful shutdown is over; by then every
    in-flight request is answered and storage is closed, so that is a clean exit (0)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: None)


async def _with_store(settings: Settings, command: argparse.Namespace) -> int:
    from session_service.app import build_store
    from session_service.store.embedded import EmbeddedServer
    from session_service.transcript import json_transcript

    embedded = None
    url = settings.redis_connection_url
    if settings.embedded:
        embedded = EmbeddedServer(settings.data_dir, settings.embedded_appendfsync)
        url = await asyncio.to_thread(embedded.start)
    store = build_store(settings, url)
    try:
        if command.command == "cleanup":

            def show(users: int, scanned: int, removed: int) -> None:
                line = f"\rusers {users}  sessions scanned {scanned}  expired removed {removed}"
                print(line, end="", file=sys.stderr, flush=True)

            removed, scanned = await store.cleanup_all(progress=show)
            print(file=sys.stderr)
            print(orjson.dumps({"cleaned_sessions": removed, "scanned": scanned}).decode())
        elif command.command == "export":
            if not is_session_id(command.session_id):
                print("session not found", file=sys.stderr)
                return 1
            session = await store.get(command.user, command.session_id)
            out = sys.stdout.buffer
            upto = session.last_seq
            async for piece in json_transcript(store, command.user, session, upto):
                out.write(piece)
            out.write(b"\n")
        elif command.command == "erase-user":
            sessions, keys = await store.erase_user(command.user_id)
            print(orjson.dumps({"deleted_sessions": sessions, "deleted_keys": keys}).decode())
        elif command.command == "import-legacy":
            return await _import_legacy(settings, store, command)
        return 0
    finally:
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _import_legacy(settings: Settings, store: SessionStore, command: Any) -> int:
    # Imported here: the one-time import is its own package, never loaded to serve.
    from session_legacy.run import (
        SourceError,
        Summary,
        bounds_from,
        describe_source,
        import_legacy,
        source_client,
    )

    source = source_client(command.source, command.db, settings.redis_timeout_seconds)
    summary = Summary(describe_source(command.source, command.db), command.dry_run)

    def show(scanned: int, imported: int, skipped: int, failed: int) -> None:
        verb = "would import" if command.dry_run else "imported"
        line = f"\rscanned {scanned}  {verb} {imported}  skipped {skipped}  failed {failed}"
        print(line, end="", file=sys.stderr, flush=True)

    try:
        await import_legacy(store, source, summary, bounds_from(settings), progress=show)
    except SourceError as exc:
        summary.error = f"cannot read --source ({summary.source}): {exc}"
    finally:
        await source.aclose()
        print(file=sys.stderr)
    print(orjson.dumps(summary.as_json()).decode())
    if summary.error:
        print(f"fm-session-service: {summary.error}", file=sys.stderr)
    return 1 if summary.failed or summary.error else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    if args.command in (None, "serve"):
        return serve(settings, args.host, args.port, args.workers)
    try:
        return asyncio.run(_with_store(settings, args))
    except Exception as exc:  # an admin command reports, it does not dump a stack
        from session_service.store.probe import classify

        problem = classify(settings, exc)  # a refused REDIS_PASSWORD/REDIS_DB is named
        print(f"fm-session-service: {problem or f'{type(exc).__name__}: {exc}'}", file=sys.stderr)
        return 2 if problem else 1
