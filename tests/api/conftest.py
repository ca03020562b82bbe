"""Every test under tests/api runs twice: through the fast path and through FastAPI's router.

`FAST_PATH` only changes which code dispatches a request, never the answer, so
the whole suite must pass both ways (test_fast_path.py also compares full
responses of the two ways request by request).
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, client_settings, running_app


@pytest.fixture(params=[True, False], ids=["fast", "router"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def make_client(redis: Redis, redis_url: str, fast_path: bool) -> ClientFactory:
    """The root `make_client`, with FAST_PATH set by the parametrization (unless overridden)."""

    def factory(**overrides: Any) -> Any:
        return running_app(client_settings(redis_url, **{"fast_path": fast_path, **overrides}))

    return factory
