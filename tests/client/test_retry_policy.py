"""Which failures the client repeats, and how long it waits (no server needed)."""

from __future__ import annotations

import random

import httpx
import pytest

from fm_session_client import RetryPolicy, SessionClient, errors
from fm_session_client.retry import may_repeat, wait_before_retry

REQUEST = httpx.Request("POST", "http://service/api/v1/sessions")


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=REQUEST)


@pytest.mark.parametrize(
    ("failure", "keyed", "keyless"),
    [
        (httpx.ConnectError("refused"), True, True),
        (httpx.ConnectTimeout("slow connect"), True, True),
        (httpx.ReadTimeout("no reply"), True, False),
        (httpx.RemoteProtocolError("closed mid-reply"), True, False),
        (httpx.ReadError("reset"), True, False),
        (answer(502), True, False),
        (answer(503, **{"Retry-After": "1"}), True, False),
        (answer(504), True, False),
        (answer(429, **{"Retry-After": "1"}), True, True),
        (answer(408), True, True),
        (answer(500), False, False),
        (answer(409), False, False),
        (answer(412), False, False),
    ],
)
def test_what_is_repeated(
    failure: httpx.Response | httpx.TransportError, keyed: bool, keyless: bool
) -> None:
    assert may_repeat(failure, repeatable=True) is keyed
    assert may_repeat(failure, repeatable=False) is keyless


def test_retry_after_is_a_floor_and_backoff_is_bounded() -> None:
    policy = RetryPolicy(backoff_initial=0.1, backoff_max=1.0)
    rng = random.Random(1)
    waits = [wait_before_retry(policy, attempt, answer(502), 60, rng) for attempt in range(50)]
    assert all(0 <= wait <= 1.0 for wait in waits) and max(waits) > 0.1
    assert wait_before_retry(policy, 0, answer(503, **{"Retry-After": "3"}), 60, rng) >= 3


def test_gives_up_with_the_service_error_when_retry_after_passes_the_deadline() -> None:
    """A Retry-After beyond the deadline is not waited out: the 503 is raised at once."""
    sent: list[str] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Idempotency-Key"])
        return httpx.Response(
            503,
            json={"detail": "down", "code": "storage_unavailable"},
            headers={"Retry-After": "3600"},
        )

    client = SessionClient(
        "http://service", user_id="u", deadline=5, transport=httpx.MockTransport(unavailable)
    )
    with client, pytest.raises(errors.StorageUnavailable) as raised:
        client.create_session()
    assert raised.value.retry_after == 3600 and len(sent) == 1


def test_repeats_carry_the_same_key_and_headers() -> None:
    seen: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(
            201,
            json={
                "summary_id": "sum_0000000001",
                "covers_through": "msg_0000000001",
                "content": "c",
                "token_count": 1,
                "token_count_estimated": True,
                "created_at": "2026-01-01T00:00:00Z",
                "metadata": {},
            },
        )

    client = SessionClient(
        "http://service",
        user_id="u1",
        gateway_token="s3cret",
        retry=RetryPolicy(backoff_initial=0.001),
        transport=httpx.MockTransport(flaky),
    )
    with client:
        summary = client.create_summary("sess_x", "c", "msg_0000000001")
    assert summary.summary_id == "sum_0000000001" and len(seen) == 3
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1
    assert {r.headers["X-User-ID"] for r in seen} == {"u1"}
    assert {r.headers["X-Gateway-Token"] for r in seen} == {"s3cret"}


def test_a_keyless_write_is_not_repeated_after_a_gateway_error() -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(504, text="gateway timeout")

    client = SessionClient("http://service", user_id="u", transport=httpx.MockTransport(gateway))
    with client, pytest.raises(errors.ApiError) as raised:
        client.rewind("sess_x", "msg_0000000001")
    assert raised.value.status == 504 and len(seen) == 1
