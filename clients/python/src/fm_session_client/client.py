# Written by clients/python/unasync.py from aio.py: edit that module, then run
# `make client-sync`. tests/client/test_unasync.py fails when this file is stale.
"""`SessionClient`: its settings, its HTTP client, and the `_run` that every method uses.

Every method is one `Call` from calls/ run through `_run`, which owns retries: the
same request (same Idempotency-Key) again after a transient failure, with backoff,
until the operation's deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TypeVar

import httpx

from fm_session_client.base import Attempts, Settings, answer, build_request, gave_up, is_failure
from fm_session_client.calls import Call
from fm_session_client.conversation_api import ConversationApi
from fm_session_client.feed_api import FeedApi
from fm_session_client.retry import RetryPolicy
from fm_session_client.sessions_api import SessionsApi

T = TypeVar("T")


class SessionClient(SessionsApi, ConversationApi, FeedApi):
    """A client of the session service, for one user (or none, for the service endpoints).

    `timeout` and `deadline` override the retry policy's read timeout per attempt and its
    overall deadline per operation; `transport` is for tests and custom networking.
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str | None = None,
        gateway_token: str | None = None,
        user_email: str | None = None,
        user_roles: Sequence[str] | None = None,
        timeout: float | None = None,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = Settings.build(
            base_url,
            user_id=user_id,
            gateway_token=gateway_token,
            user_email=user_email,
            user_roles=user_roles,
            timeout=timeout,
            deadline=deadline,
            retry=retry,
            headers=headers,
        )
        self._http = httpx.Client(
            base_url=base_url, headers=self.settings.identity_headers(), transport=transport
        )
        self._rng = random.Random()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SessionClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        attempts = Attempts(call, self.settings.retry, self._rng)
        while True:
            failure: httpx.Response | httpx.TransportError
            try:
                response = self._http.send(build_request(self._http, call, attempts.timeout()))
                response.read()
            except httpx.TransportError as error:
                failure = error
            else:
                if not is_failure(call, response):
                    return answer(call, response)
                failure = response
            wait = attempts.next_wait(failure)
            if wait is None:
                raise gave_up(failure, call)
            time.sleep(wait)
