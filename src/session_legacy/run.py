"""`fm-session-service import-legacy`: move the original service's sessions over.

The original's keys are read with SCAN (``session:*``, never KEYS) and a
pipelined GET + PTTL per batch; each record is read by `records` and
written through the store's scripts (`writer`). A record that cannot
be read is reported under `failed`, one that must not be imported under
`skipped`, each with its reason; a second run skips everything the first
imported, so it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import exceptions as rx
from redis.asyncio import Redis

from session_legacy import DEFAULT_DB as DEFAULT_DB
from session_legacy.records import (
    KEY_PREFIX,
    Bounds,
    LegacySession,
    Skip,
    Unreadable,
    read_record,
)
from session_legacy.writer import import_session, imported_state
from session_service.config import Settings
from session_service.errors import ServiceError
from session_service.store.sessions import SessionStore

SCAN_COUNT = 500
Progress = Callable[[int, int, int, int], None]


class SourceError(Exception):
    """The original's Redis could not be read (the run stops; its summary says so)."""


@dataclass
class Summary:
    source: str
    dry_run: bool
    scanned: int = 0
    imported: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "dry_run": self.dry_run,
            "scanned": self.scanned,
            "imported": self.imported,
            "skipped": self.skipped,
            "failed": self.failed,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def bounds_from(settings: Settings) -> Bounds:
    return Bounds(
        max_message_bytes=settings.max_message_bytes,
        max_messages=settings.max_messages_per_session,
        min_timeout_minutes=settings.session_min_timeout_minutes,
        max_timeout_minutes=settings.session_max_timeout_minutes,
        default_timeout_ms=settings.default_session_ttl * 1000,
    )


def source_client(url: str, db: int, timeout: float) -> Redis:
    """A client on the original's Redis; `db` wins over a db in the URL."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("--source must be a redis://, rediss:// or unix:// URL")
    client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    client.connection_pool.connection_kwargs["db"] = db
    return client


def describe_source(url: str, db: int) -> str:
    scheme, sep, rest = url.partition("://")
    host = rest.rpartition("@")[2].split("/")[0].split("?")[0]
    return f"{scheme}{sep}{host} db {db}"


async def import_legacy(
    store: SessionStore,
    source: Redis,
    summary: Summary,
    bounds: Bounds,
    progress: Progress | None = None,
) -> Summary:
    seen: set[bytes] = set()
    async for batch in _batches(source):
        fresh = [key for key in batch if key not in seen]
        seen.update(fresh)
        pipe = source.pipeline(transaction=False)
        for key in fresh:
            pipe.get(key)
            pipe.pttl(key)
        try:
            replies = await pipe.execute(raise_on_error=False) if fresh else []
        except rx.RedisError as exc:
            raise SourceError(f"{type(exc).__name__}: {exc}") from exc
        for index, raw_key in enumerate(fresh):
            value, ttl = replies[2 * index], replies[2 * index + 1]
            await _one(
                store, summary, bounds, raw_key.decode("utf-8", "backslashreplace"), value, ttl
            )
        if progress is not None:
            progress(summary.scanned, summary.imported, len(summary.skipped), len(summary.failed))
    return summary


async def _batches(source: Redis) -> Any:
    cursor: int = 0
    while True:
        try:
            cursor, keys = await source.scan(cursor, match=f"{KEY_PREFIX}*", count=SCAN_COUNT)
        except rx.RedisError as exc:
            raise SourceError(f"{type(exc).__name__}: {exc}") from exc
        yield keys
        if cursor == 0:
            return


async def _one(
    store: SessionStore, summary: Summary, bounds: Bounds, key: str, value: Any, ttl: Any
) -> None:
    summary.scanned += 1
    if isinstance(value, Exception):
        summary.failed.append({"key": key, "reason": f"cannot read: {value}"})
        return
    if value is None or isinstance(ttl, Exception) or int(ttl) in (-2, 0):
        summary.skipped.append({"key": key, "reason": "expired before it was read"})
        return
    record = read_record(key, value, bounds)
    if isinstance(record, Unreadable):
        summary.failed.append({"key": key, "reason": record.reason})
        return
    if isinstance(record, Skip):
        summary.skipped.append({"key": key, "reason": record.reason})
        return
    await _write(store, summary, key, record, int(ttl))


async def _write(
    store: SessionStore, summary: Summary, key: str, record: LegacySession, ttl: int
) -> None:
    try:
        if summary.dry_run:
            reason = await imported_state(store, record.user_id, record.session_id)
        else:
            reason = await import_session(store, record, ttl)
    except (rx.RedisError, ServiceError) as exc:
        summary.failed.append({"key": key, "reason": f"write failed: {type(exc).__name__}: {exc}"})
        return
    if reason is None:
        summary.imported += 1
    else:
        summary.skipped.append({"key": key, "reason": reason})
