"""REDIS_SSL=true (issue 12, item 1): TLS to the server REDIS_HOST names.

The test server has no TLS of its own, so a real TLS-terminating TCP proxy (with
the test certificate in tests/tls/) stands in front of it: the service speaks TLS
to the proxy, the proxy plain RESP to the server. A certificate the client does
not trust is named at start, not taken for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from session_service.config import Settings
from session_service.store.keys import Keys
from session_service.store.probe import unusable_setting
from tests.conftest import create_session, running_app
from tests.servers import RedisProcess

TLS = Path(__file__).parent / "tls"
CERT, KEY, UNTRUSTED = TLS / "server-cert.pem", TLS / "server-key.pem", TLS / "other-cert.pem"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def tls_proxy(target_port: int) -> AsyncIterator[int]:
    """A TLS listener on a free port that forwards every connection to the server."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        for pair in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(_pipe(*pair))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await listener.wait_closed()


def settings(port: int, ca: Path) -> Settings:
    return Settings(
        _env_file=None,
        cleanup_interval_seconds=0,
        log_level="WARNING",
        redis_host="127.0.0.1",
        redis_port=port,
        redis_ssl=True,
        redis_tls_ca_certs=str(ca),
    )


async def test_redis_ssl_speaks_tls_to_redis_host(redis_process: RedisProcess) -> None:
    async with tls_proxy(redis_process.port) as port:
        chosen = settings(port, CERT)
        assert (chosen.redis_connection_url or "").startswith("rediss://127.0.0.1:")
        assert await unusable_setting(chosen, chosen.redis_connection_url) == (None, None)
        async with running_app(chosen) as client:
            session = await create_session(client, "u-tls", title="over TLS")
            ready = (await client.get("/ready")).json()
    assert ready["storage"].startswith("rediss://127.0.0.1:")
    async with Redis.from_url(redis_process.url, decode_responses=True) as raw:
        key = Keys("fms").session("u-tls", session["session_id"])
        assert await raw.hget(key, "t") == "over TLS"


async def test_an_untrusted_certificate_is_named_at_start(redis_process: RedisProcess) -> None:
    async with tls_proxy(redis_process.port) as port:
        chosen = settings(port, UNTRUSTED)
        problem, outage = await unusable_setting(chosen, chosen.redis_connection_url)
    assert outage is None
    assert problem is not None and problem.startswith("invalid REDIS_SSL")
    assert "certificate verify failed" in problem
