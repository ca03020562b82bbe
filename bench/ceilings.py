"""The ceiling apps: what one Python process can serve at best on this machine.

(a) `json_app`: a bare ASGI app answering a small JSON body — the HTTP limit.
(b) `redis_app`: a bare ASGI app doing one redis-py GET per request and
    returning its bytes — the limit for "one request, one Redis round trip".
    `coredis_app` is the same with coredis (the `servers` comparison).
Both run under the same uvicorn settings as the service.
"""

from __future__ import annotations

import os
from typing import Any

from redis.asyncio import Redis

_BODY = b'{"status":"ok","service":"ceiling"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]


async def _drain(receive: Any) -> None:
    message = await receive()
    while message.get("more_body"):
        message = await receive()


async def json_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await _drain(receive)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


_client: Redis | None = None
CEILING_KEY = "bench:ceiling"


async def redis_app(scope: Any, receive: Any, send: Any) -> None:
    global _client
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if _client is None:
        _client = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    await _drain(receive)
    value = await _client.get(CEILING_KEY) or b"{}"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(value)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": value})


_coredis: Any = None


async def coredis_app(scope: Any, receive: Any, send: Any) -> None:
    """(b) with coredis instead of redis-py: would another client lift the ceiling?"""
    global _coredis
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if _coredis is None:
        import coredis

        # coredis 6 opens its pool in an async context, kept for the process's life.
        _coredis = await coredis.Redis.from_url(os.environ["BENCH_REDIS_URL"]).__aenter__()
    await _drain(receive)
    value = await _coredis.get(CEILING_KEY) or b"{}"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(value)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": value})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
