"""Shared fixtures: a real server per test session, an app's lifespan per test.

`redis_url` is a real valkey/redis server started for the run; every test gets
a clean database. `make_client` runs an app with any settings override through its
lifespan, as uvicorn would: a new store, connections and change feed each time, on an
app this process built before for the same settings (`running_app`). The helpers tests
share (`user`, `create_session`, key names, deadlines) live in `tests/helpers.py`; `user`
and `create_session` are re-exported here for the modules that import them from here.
"""

from __future__ import annotations

import contextlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from session_service.app import create_app
from session_service.config import Settings
from session_service.observability.logging import configure_logging
from tests.helpers import create_session as create_session
from tests.helpers import user as user
from tests.servers import RedisProcess, redis_server

ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]

# ---- sharing the suite among pytest-xdist workers (`make test`) ---------------------------
#
# `make test` runs `pytest -n N --dist loadfile`: each test file runs whole on one worker, as
# it would alone. Its module-scoped fixtures (a live server, an out-of-memory Redis) start
# once, and its tests never interleave with another file's, which would tear those down and
# up again. The topology tests are one unit: they share a Sentinel and a Cluster (session
# fixtures, 13 server processes) that would otherwise start on every worker.

TOPOLOGY = "tests/topology/"


def _scope(nodeid: str) -> str:
    """The unit of work a test belongs to: the topology tests, else its file."""
    return TOPOLOGY if nodeid.startswith(TOPOLOGY) else nodeid.split("::", 1)[0]


class _TopologyAsOneUnit:
    """`--dist loadfile`, with the topology tests as one unit (see `_scope`). A plugin of
    its own, registered only where pytest-xdist is installed (not at the minimums)."""

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadFileScheduling

        class Scheduling(LoadFileScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return _scope(nodeid)

        return Scheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_TopologyAsOneUnit(), "topology-as-one-unit")


def _unique_node_ids(items: list[pytest.Item]) -> None:
    """schemathesis gives every operation's test the function's node id
    (`test_fuzz.py::test_api_answers_as_documented` 36 times). pytest-xdist finds a test
    by its node id, so it would run one of the 36; the item's name (`...[GET /health]`)
    tells them apart, in reports and --durations too."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.parent is not None:
            unique = f"{item.parent.nodeid}::{item.name}"
            try:  # pytest >= 9.2 derives the node id from a structured id
                from _pytest.nodeid import coerce_node_id
            except ImportError:
                item._nodeid = unique
            else:
                item._id = coerce_node_id(unique)
    assert len({item.nodeid for item in items}) == len(items), "two tests share a node id"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the units most likely to be long go first (the topology tests,
    then the files with a test marked `slow`), so that no long unit starts last while the
    other workers sit idle. The order within a file is kept. Outside xdist nothing changes.
    """
    _unique_node_ids(items)
    if not hasattr(config, "workerinput"):
        return
    slow_files = {_scope(item.nodeid) for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        scope = _scope(item.nodeid)
        return 0 if scope == TOPOLOGY else 1 if scope in slow_files else 2

    items.sort(key=rank)


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_process: RedisProcess) -> str:
    return redis_process.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


# An app client's Redis timeout in tests. The production default (1.5 s) is a
# promise about outages; on a loaded CI machine a burst of 60 concurrent requests
# can queue longer than that behind the CPU and answer 503. Tests that are about
# outages and timeouts build their settings with `make_settings` and their own value.
# The same for opening a connection (1 s by default): each test's lifespan opens new
# ones, and beside `stress-ng` a local connect once took longer than a second (503).
CLIENT_REDIS_TIMEOUT = 10.0


def client_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings for the `client`/`make_client` fixtures: load-proof Redis timeouts."""
    load_proof = {
        "redis_timeout_seconds": CLIENT_REDIS_TIMEOUT,
        "redis_connect_timeout_seconds": CLIENT_REDIS_TIMEOUT,
    }
    return make_settings(redis_url, **{**load_proof, **overrides})


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "cleanup_interval_seconds": 0,
        "log_level": "WARNING",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


#: Apps built in this process and not running now, by their settings, the most recently
#: used last. An app runs one lifespan at a time: two instances with equal settings
#: (`make_client() as one, make_client() as two`, the model checker's instances) are
#: two apps, as they are two processes in production.
_IDLE_APPS: OrderedDict[tuple[str, int], FastAPI] = OrderedDict()
#: How many idle apps a process keeps (each holds its routes and pydantic adapters).
_KEPT_APPS = 16


def _settings_key(settings: Settings) -> str:
    """Every setting's value, secrets included: equal keys build equal apps."""
    values = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return repr(sorted(values.items()))


def _take_app(key: str) -> FastAPI | None:
    """An idle app built for the settings `key`, now no longer idle."""
    for idle in reversed(_IDLE_APPS):
        if idle[0] == key:
            return _IDLE_APPS.pop(idle)
    return None


def _park_app(key: str, app: FastAPI) -> None:
    _IDLE_APPS[(key, id(app))] = app
    while len(_IDLE_APPS) > _KEPT_APPS:
        _IDLE_APPS.popitem(last=False)


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, *, fresh: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """As the entry points do: logging for the process, then the app's lifespan.

    The app is one this process built before for equal settings and that is not running
    now, unless `fresh`. What it keeps between runs is what `create_app` builds (routes,
    middleware, and the route state FastAPI builds on the first request: about 85 ms of
    CPU per app, paid by every test before). Everything a test can change, the store,
    its connections, the change feed and the case-service client, is built by the
    lifespan, anew for each run. A test that changes the app itself (adds a route) asks
    for a `fresh` one, which is never reused.
    """
    configure_logging(settings.log_level, settings.effective_log_format.value)
    key = _settings_key(settings)
    app = None if fresh else _take_app(key)
    app = app or create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    if not fresh:
        _park_app(key, app)


@pytest.fixture
def make_client(redis: Redis, redis_url: str) -> ClientFactory:
    """Build an app client with settings overrides (the database is already clean)."""

    def factory(
        fresh: bool = False, **overrides: Any
    ) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_app(client_settings(redis_url, **overrides), fresh=fresh)

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
