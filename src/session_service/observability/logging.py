"""Structured logs: one JSON (or text) line per event, tagged with the request id.

Message content and raw user ids never reach a log line; `user_ref` gives a
short, stable hash for correlating one user's requests.
"""

from __future__ import annotations

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"  # outside any request
        return super().format(record)


_handler: logging.StreamHandler[Any] | None = None
ACCESS_LOGGER = "session_service.access"


@functools.lru_cache(maxsize=64)
def _second(seconds: int, fmt: str) -> str:
    return time.strftime(fmt, time.gmtime(seconds) if "T" in fmt else time.localtime(seconds))


def write_access_line(
    method: str, route: str, status: int, duration_ms: float, user: str | None
) -> None:
    """The access line of one request, in the configured format.

    It is the one line every request writes, so it skips the LogRecord, filter
    and formatter machinery and writes the same JSON (or text) the formatters
    would produce straight to the configured stream.
    """
    message = f"{method} {route} {status} {duration_ms:.1f}ms"
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _handler
    if handler is None:  # logging not configured by us: go through logging
        logger.info(message)
        return
    now = time.time()
    seconds, millis = int(now), int(now * 1000) % 1000
    rid = request_id_var.get()
    if isinstance(handler.formatter, JsonFormatter):
        entry: dict[str, Any] = {
            "ts": f"{_second(seconds, '%Y-%m-%dT%H:%M:%S')}.{millis:03d}Z",
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "msg": message,
            "request_id": rid,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
        }
        if user is not None:
            entry["user"] = user
        line = orjson.dumps(entry).decode()
    else:
        stamp = f"{_second(seconds, '%Y-%m-%d %H:%M:%S')},{millis:03d}"
        line = f"{stamp} INFO    {ACCESS_LOGGER} [{rid or '-'}] {message}"
    handler.acquire()
    try:
        handler.stream.write(line + "\n")
        handler.flush()
    finally:
        handler.release()


def configure_logging(level: str, fmt: str) -> None:
    global _handler
    handler = logging.StreamHandler(sys.stderr)
    _handler = handler
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access line replaces uvicorn's (it has the route template and request id).
    logging.getLogger("uvicorn.access").disabled = True
