"""Rate limit per user and the slow-body timeout."""

from __future__ import annotations

import json
import select
import socket
import time

import httpx
from redis.asyncio import Redis

from tests.conftest import ClientFactory, user
from tests.helpers import API, SESSION_RECORDS
from tests.security.conftest import ServerFactory, read_response, request_bytes


async def _over_the_limit(client: httpx.AsyncClient, redis: Redis) -> list[httpx.Response]:
    """Three allowed requests and a fourth, all in one clock minute."""
    for _ in range(3):
        await redis.flushall()
        minute = int(time.time() // 60)
        responses = [await client.get(API, headers=user("alice")) for _ in range(3)]
        responses.append(await client.post(API, json={"title": "x"}, headers=user("alice")))
        if int(time.time() // 60) == minute:
            return responses
    raise AssertionError("could not stay within one minute")


async def test_fourth_request_is_rate_limited(make_client: ClientFactory, redis: Redis) -> None:
    async with make_client(rate_limit_per_minute=3) as client:
        responses = await _over_the_limit(client, redis)
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        limited = responses[-1]
        assert limited.json()["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # The limited create wrote nothing.
        assert [k async for k in redis.scan_iter(match=SESSION_RECORDS)] == []
        # Another user is not affected.
        other = await client.get(API, headers=user("bob"))
        assert other.status_code == 200


async def test_rate_limit_off_by_default(make_client: ClientFactory) -> None:
    async with make_client() as client:
        statuses = {(await client.get(API, headers=user("alice"))).status_code for _ in range(10)}
        assert statuses == {200}


async def test_rate_limit_leaves_operations_endpoints_alone(make_client: ClientFactory) -> None:
    async with make_client(rate_limit_per_minute=1) as client:
        statuses = {(await client.get("/health")).status_code for _ in range(5)}
        assert statuses == {200}


def test_slow_body_times_out(live_server: ServerFactory) -> None:
    with live_server(request_body_timeout=0.5) as server, server.connect() as sock:
        head = request_bytes("POST", API, [("X-User-ID", "a")], content_length=False)
        sock.sendall(head[:-2] + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        sock.sendall(b'{"title": ')  # and then nothing more
        status, _, body = read_response(sock)
        assert status == 408
        assert json.loads(body)["code"] == "request_timeout"


def test_slow_body_writes_nothing(live_server: ServerFactory) -> None:
    with live_server(request_body_timeout=0.5) as server:
        with server.connect() as sock:
            head = request_bytes("POST", API, [("X-User-ID", "a")], content_length=False)
            sock.sendall(head[:-2] + b"Content-Length: 15\r\n\r\n{}")
            status, _, _ = read_response(sock)
            assert status == 408
        status, _, body = server.raw(request_bytes("GET", API, [("X-User-ID", "a")]))
        assert status == 200
        assert json.loads(body)["total"] == 0


def test_body_cut_short_by_a_disconnect_is_not_executed(live_server: ServerFactory) -> None:
    # The first bytes are a complete JSON document; the rest never comes.
    with live_server() as server:
        with server.connect() as sock:
            head = request_bytes("POST", API, [("X-User-ID", "a")], content_length=False)
            payload = b'{"title": "cut"}'
            sock.sendall(head[:-2] + b"Content-Length: 100\r\n\r\n" + payload)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            assert sock.recv(1024) == b""  # closed without an answer
        status, _, body = server.raw(request_bytes("GET", API, [("X-User-ID", "a")]))
        assert status == 200
        assert json.loads(body)["total"] == 0


def test_trickled_body_times_out_as_a_whole(live_server: ServerFactory) -> None:
    # Every byte arrives well within the timeout; the body as a whole does not.
    payload = b'{"title": "' + b"t" * 40 + b'"}'
    with live_server(request_body_timeout=0.5) as server, server.connect() as sock:
        head = request_bytes("POST", API, [("X-User-ID", "a")], content_length=False)
        sock.sendall(head[:-2] + b"Content-Length: %d\r\n\r\n" % len(payload))
        for byte in payload:
            if select.select([sock], [], [], 0.1)[0]:
                break  # the server answered before the body was complete
            sock.sendall(bytes([byte]))
        status, _, body = read_response(sock)
        assert status == 408
        assert json.loads(body)["code"] == "request_timeout"
