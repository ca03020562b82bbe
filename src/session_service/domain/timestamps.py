"""How the API writes a moment: ISO 8601, UTC, milliseconds, `Z`."""

from __future__ import annotations

import functools
import time


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # A response formats several timestamps from the same few seconds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso(ms: int) -> str:
    """Milliseconds since the epoch as `2026-01-31T12:00:00.000Z`."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"
