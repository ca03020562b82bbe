"""Security fixtures: the app served by uvicorn on a real socket, and raw HTTP.

Duplicate headers, stalled bodies and oversized Content-Lengths only behave as
they would in production over a real socket, so these tests send bytes
themselves instead of going through a client that would merge or fix them.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as sync_redis

from session_service.app import create_app
from tests.conftest import make_settings
from tests.servers import uvicorn_thread


@dataclass
class LiveServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """Send `data` as is and read one response."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, body


@contextlib.contextmanager
def serve(redis_url: str, **overrides: Any) -> Iterator[LiveServer]:
    """The app under uvicorn in a background thread, on a free loopback port."""
    with uvicorn_thread(create_app(make_settings(redis_url, **overrides))) as port:
        yield LiveServer("127.0.0.1", port)


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[sync_redis.Redis]:
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


ServerFactory = Callable[..., contextlib.AbstractContextManager[LiveServer]]


@pytest.fixture
def live_server(clean_redis: sync_redis.Redis, redis_url: str) -> ServerFactory:
    """Start a server with settings overrides: `with live_server(X=1) as server:`."""

    def factory(**overrides: Any) -> contextlib.AbstractContextManager[LiveServer]:
        return serve(redis_url, **overrides)

    return factory


def request_bytes(
    method: str,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_length: bool = True,
) -> bytes:
    """One HTTP/1.1 request, headers exactly as given (duplicates and case kept)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if content_length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
