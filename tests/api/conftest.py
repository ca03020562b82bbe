"""Every test under tests/api runs once, through the fast path (the default dispatch).

`FAST_PATH` only changes which code dispatches a request, never the answer: the
router path is held to the fast path's answers by test_fast_path.py, which replays a
corpus of requests generated from the routes (every route, valid and invalid) both
ways and compares whole responses, ETags included. A test that needs the router
itself overrides the `fast_path` fixture.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from tests.conftest import ClientFactory, client_settings, running_app


@pytest.fixture
def fast_path() -> bool:
    return True


@pytest.fixture
def make_client(redis: Redis, redis_url: str, fast_path: bool) -> ClientFactory:
    """The root `make_client`, with FAST_PATH set by the `fast_path` fixture (unless overridden)."""

    def factory(**overrides: Any) -> Any:
        return running_app(client_settings(redis_url, **{"fast_path": fast_path, **overrides}))

    return factory
