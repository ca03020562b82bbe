"""What the sync and async clients share: settings, headers, and reading an answer."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from fm_session_client import errors
from fm_session_client import retry as retry_module
from fm_session_client.calls import Call

T = TypeVar("T")

USER_AGENT = "fm-session-client/0.1"


@dataclass(frozen=True)
class Settings:
    """How to reach the service and as whom.

    `user_id` is sent as `X-User-ID` (as FaultMaven's gateway would); `gateway_token` as
    `X-Gateway-Token` when the service has GATEWAY_SHARED_SECRET set; `user_roles` as
    `X-User-Roles` (e.g. `["admin"]` for the admin endpoints).
    """

    base_url: str
    user_id: str | None = None
    gateway_token: str | None = None
    user_email: str | None = None
    user_roles: Sequence[str] | None = None
    retry: retry_module.RetryPolicy = field(default_factory=retry_module.RetryPolicy)
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        base_url: str,
        *,
        user_id: str | None,
        gateway_token: str | None,
        user_email: str | None,
        user_roles: Sequence[str] | None,
        timeout: float | None,
        deadline: float | None,
        retry: retry_module.RetryPolicy | None,
        headers: Mapping[str, str] | None,
    ) -> Settings:
        """The clients' keyword arguments: `timeout` and `deadline` override the policy's
        per-attempt read timeout and its per-operation deadline."""
        policy = retry or retry_module.RetryPolicy()
        if timeout is not None:
            policy = dataclasses.replace(policy, read_timeout=timeout)
        if deadline is not None:
            policy = dataclasses.replace(policy, deadline=deadline)
        return cls(
            base_url=base_url,
            user_id=user_id,
            gateway_token=gateway_token,
            user_email=user_email,
            user_roles=user_roles,
            retry=policy,
            headers=dict(headers or {}),
        )

    def identity_headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, **self.headers}
        if self.user_id is not None:
            headers["X-User-ID"] = self.user_id
        if self.user_email is not None:
            headers["X-User-Email"] = self.user_email
        if self.user_roles is not None:
            headers["X-User-Roles"] = json.dumps(list(self.user_roles))
        if self.gateway_token is not None:
            headers["X-Gateway-Token"] = self.gateway_token
        return headers


class Attempts:
    """One operation's attempts against its deadline (no I/O: the clients sleep and send)."""

    def __init__(
        self, call: Call[Any], policy: retry_module.RetryPolicy, rng: random.Random
    ) -> None:
        self.call = call
        self.policy = policy
        self.rng = rng
        self.deadline = time.monotonic() + policy.deadline
        self.attempt = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> httpx.Timeout:
        return self.policy.timeout(self.remaining())

    def next_wait(self, failure: httpx.Response | httpx.TransportError) -> float | None:
        """Seconds to wait before trying again, or None: give up now."""
        self.attempt += 1
        if self.attempt >= self.policy.max_attempts:
            return None
        if not retry_module.may_repeat(failure, self.call.repeatable):
            return None
        wait = retry_module.wait_before_retry(
            self.policy, self.attempt - 1, failure, self.remaining(), self.rng
        )
        # Leave time for the next attempt itself, not only for the wait.
        if wait >= self.remaining():
            return None
        return wait


def build_request(
    client: httpx.Client | httpx.AsyncClient, call: Call[Any], timeout: httpx.Timeout
) -> httpx.Request:
    return client.build_request(
        call.method,
        call.path,
        params=httpx.QueryParams(tuple(call.params)),
        json=call.json if call.has_body else None,
        headers=call.headers,
        timeout=timeout,
    )


def is_failure(call: Call[Any], response: httpx.Response) -> bool:
    return response.status_code not in call.ok


def answer(call: Call[T], response: httpx.Response) -> T:
    """The call's value, or its error raised."""
    if response.status_code in call.ok:
        return call.parse(response)
    raise api_error(call, response)


def api_error(call: Call[Any], response: httpx.Response) -> errors.ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    headers = {name.lower(): value for name, value in response.headers.items()}
    error = errors.error_for(response.status_code, body, headers)
    if call.method == "HEAD" and response.status_code == 404:
        # A HEAD answer has no body to carry the code; the only 404 is the session's.
        return errors.SessionNotFound(404, "session_not_found", "Session not found", {}, headers)
    return error


def gave_up(failure: httpx.Response | httpx.TransportError, call: Call[Any]) -> Exception:
    """The exception to raise when the last failure is final."""
    if isinstance(failure, httpx.Response):
        return api_error(call, failure)
    transport = errors.TransportError(
        f"{call.method} {call.path}: no answer before the deadline ({type(failure).__name__}: "
        f"{failure})"
    )
    transport.__cause__ = failure
    return transport
