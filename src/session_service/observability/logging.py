"""Structured logs: one JSON (or text) line per event, tagged with the request id.

Message content and raw user ids never reach a log line; `user_ref` gives a
short, stable hash for correlating one user's requests.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import functools
import hashlib
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@functools.lru_cache(maxsize=4096)
def user_ref(user_id: str) -> str:
    return hashlib.blake2s(user_id.encode("utf-8"), digest_size=6).hexdigest()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


@functools.lru_cache(maxsize=64)
def _second(seconds: int, fmt: str, utc: bool) -> str:
    return time.strftime(fmt, time.gmtime(seconds) if utc else time.localtime(seconds))


class LineFormatter(logging.Formatter, abc.ABC):
    """Renders one line from its parts; `format` and the access line both use `line`."""

    @abc.abstractmethod
    def line(
        self, created: float, level: str, name: str, message: str, extra: dict[str, Any]
    ) -> str:
        """One log line in this formatter's format (JSON or text)."""

    def format(self, record: logging.LogRecord) -> str:
        extra = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _RESERVED and value is not None
        }
        text = self.line(record.created, record.levelname, record.name, record.getMessage(), extra)
        if record.exc_info:
            text = self.with_exception(text, self.formatException(record.exc_info))
        return text

    def with_exception(self, text: str, exc: str) -> str:
        return f"{text}\n{exc}"


class JsonFormatter(LineFormatter):
    def line(
        self, created: float, level: str, name: str, message: str, extra: dict[str, Any]
    ) -> str:
        seconds = int(created)
        millis = int((created - seconds) * 1000)
        entry: dict[str, Any] = {
            "ts": f"{_second(seconds, '%Y-%m-%dT%H:%M:%S', True)}.{millis:03d}Z",
            "level": level,
            "logger": name,
            "msg": message,
            **extra,
        }
        return orjson.dumps(entry, default=str).decode()

    def with_exception(self, text: str, exc: str) -> str:
        return text[:-1] + "," + orjson.dumps({"exc": exc}).decode()[1:]


class TextFormatter(LineFormatter):
    def line(
        self, created: float, level: str, name: str, message: str, extra: dict[str, Any]
    ) -> str:
        seconds = int(created)
        millis = int((created - seconds) * 1000)
        stamp = f"{_second(seconds, '%Y-%m-%d %H:%M:%S', False)},{millis:03d}"
        return f"{stamp} {level:<7} {name} [{extra.get('request_id') or '-'}] {message}"


class ServiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler `configure_logging` installs on the root logger."""


ACCESS_LOGGER = "session_service.access"


def _service_handler() -> ServiceHandler | None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ServiceHandler):
            return handler
    return None


class _AccessLines:
    """Access lines waiting for one write, at most until the event loop's next turn.

    A line written on its own costs a write system call per request (~5 µs of
    a get's ~115 µs). Under load several requests finish in one turn of the
    loop, so their lines share one write; with no other request in flight the
    line is written at once, so a quiet service (and a test) sees it immediately.
    """

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.handler: logging.StreamHandler | None = None  # type: ignore[type-arg]
        # The loop a flush is scheduled on: a loop closed before running it (a test's)
        # must not stop the next loop from scheduling its own.
        self.scheduled_on: asyncio.AbstractEventLoop | None = None

    def add(self, handler: logging.StreamHandler, line: str, alone: bool) -> None:  # type: ignore[type-arg]
        if handler is not self.handler:
            self.flush()
            self.handler = handler
        self.pending.append(line)
        if alone:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self.scheduled_on is not loop:
            self.scheduled_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled_on = None
        handler = self.handler
        if not self.pending or handler is None:
            return
        text = "\n".join(self.pending) + "\n"
        self.pending.clear()
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        finally:
            handler.release()


_access_lines = _AccessLines()


@atexit.register
def _flush_at_exit() -> None:
    # Lines batched by a loop that closed before its flush ran; the stream may be closed.
    with contextlib.suppress(ValueError, OSError):
        _access_lines.flush()


_access_logger = logging.getLogger(ACCESS_LOGGER)


def write_access_line(
    method: str,
    route: str,
    status: int,
    duration_ms: float,
    user: str | None,
    alone: bool = True,
) -> None:
    """The access line of one request, in the configured format.

    It is the one line every request writes, so it skips the LogRecord and
    filter machinery: the configured formatter renders it from its parts and it
    goes to the handler's stream, batched with other requests' lines when
    `alone` is false (other requests are in flight; see `_AccessLines`).
    """
    message = f"{method} {route} {status} {duration_ms:.1f}ms"
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    handler = _service_handler()
    if handler is None or not isinstance(handler.formatter, LineFormatter):
        _access_logger.info(message)  # logging not configured by us: go through logging
        return
    extra: dict[str, Any] = {
        "request_id": request_id_var.get(),
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": round(duration_ms, 3),
    }
    if user is not None:
        extra["user"] = user
    line = handler.formatter.line(time.time(), "INFO", ACCESS_LOGGER, message, extra)
    _access_lines.add(handler, line, alone)


def configure_logging(level: str, fmt: str) -> None:
    """Once per process, from its entry point (the CLI or `main`); safe to repeat.

    Replaces only the handler it installed before, so handlers others added
    (pytest's, an embedding application's) stay.
    """
    handler = ServiceHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, ServiceHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access line replaces uvicorn's (it has the route template and request id).
    logging.getLogger("uvicorn.access").disabled = True
