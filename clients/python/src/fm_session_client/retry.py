"""When to try a request again, and how long to wait: shared by the sync and async clients.

The rule that keeps writes exactly-once: a failure that may have happened *after* the
service acted (a reply lost, a read timeout, a 502/503/504 from a proxy or from the
service) is retried only when a repeat cannot act twice, that is for reads, for the
naturally idempotent heartbeat and archive, and for writes that carry an
`Idempotency-Key` (a repeat with the same key replays the first answer). A failure that
proves the request was never handled (no connection, a 429 or a 408 from the service)
is retried for every request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

#: Failures where the request never reached the service.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Answers where the service refused the request before acting on it.
_REFUSED = frozenset({408, 429})
#: Answers that may follow an action (the reply, not the request, was lost or delayed).
_TRANSIENT = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter inside one overall deadline per operation.

    `deadline` bounds the whole operation: every attempt, every wait. Each attempt's
    timeouts are cut to what is left of it. A `Retry-After` longer than the rest of the
    deadline ends the operation at once with the service's error.
    """

    deadline: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    backoff_initial: float = 0.05
    backoff_max: float = 2.0
    max_attempts: int = 20

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2**attempt)]."""
        ceiling = min(self.backoff_max, self.backoff_initial * (2**attempt))
        return rng.uniform(0, ceiling)

    def timeout(self, remaining: float) -> httpx.Timeout:
        """This attempt's timeouts, never past the operation's deadline."""
        left = max(remaining, 0.001)
        read = min(self.read_timeout, left)
        return httpx.Timeout(read, connect=min(self.connect_timeout, left), pool=left)


NO_RETRY = RetryPolicy(max_attempts=1)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


def may_repeat(failure: httpx.Response | httpx.TransportError, repeatable: bool) -> bool:
    """Whether this failure may be retried for a request that is (not) `repeatable`."""
    if isinstance(failure, httpx.TransportError):
        return repeatable or isinstance(failure, _NOT_SENT)
    if failure.status_code in _REFUSED:
        return True
    return repeatable and failure.status_code in _TRANSIENT


def wait_before_retry(
    policy: RetryPolicy,
    attempt: int,
    failure: httpx.Response | httpx.TransportError,
    remaining: float,
    rng: random.Random,
) -> float:
    """Seconds to wait before attempt `attempt + 1`, at least what `Retry-After` asks.

    Raises nothing; the caller gives up when the wait is longer than `remaining`.
    """
    wait = policy.backoff(attempt, rng)
    if isinstance(failure, httpx.Response):
        asked = retry_after(failure)
        if asked is not None:
            wait = max(wait, asked)
    return wait
