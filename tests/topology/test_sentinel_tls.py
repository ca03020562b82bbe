"""Sentinel with TLS (issue 20, item 11): a `rediss://` REDIS_URL (or REDIS_SSL=true) in
Sentinel mode speaks TLS to the sentinels and to the master they name, and never
sends a password in clear.

The test servers have no TLS of their own, so a real TCP proxy stands in front of
each: it terminates TLS for a connection that opens with a TLS handshake and
forwards any other connection as it is, recording what such a plaintext client
sent. The sentinel monitors the master through its proxy, so the address it names
is the proxy's: the sentinel itself talks to the master in plaintext there (with its
own password), the service must talk TLS (with another user's password).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from session_service.config import Settings
from session_service.store.keys import Keys
from session_service.store.probe import unusable_setting
from tests.conftest import create_session, running_app
from tests.feed import wakes_across_instances
from tests.servers import RedisProcess
from tests.topology.servers import MASTER_SET, SentinelProcess, wait_until

TLS = Path(__file__).parent.parent / "tls"
CERT, KEY, UNTRUSTED = TLS / "server-cert.pem", TLS / "server-key.pem", TLS / "other-cert.pem"
SERVICE_PASSWORD = "service-secret-7d1f"  # the service's ACL user on the master
SENTINEL_SIDE_PASSWORD = "sentinel-auth-pass-42"  # what the sentinel uses on the master
SENTINEL_PASSWORD = "sentinel-requirepass-99"  # REDIS_SENTINEL_PASSWORD


class SniffingProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<target>: TLS terminated, plaintext passed through."""

    def __init__(self, target: int, terminate_tls: bool = True) -> None:
        self.target = target
        self.terminate_tls = terminate_tls
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(CERT, KEY)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.tls_connections = 0
        self.plaintext = bytearray()  # everything plaintext clients sent
        self.plaintext_connections = 0
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            first = client.recv(1, socket.MSG_PEEK)
            if not first:
                # Closed before its first byte (a client cancelled between connect and
                # hello): it spoke neither TLS nor plaintext.
                client.close()
                return
            tls = first == b"\x16" and self.terminate_tls  # a TLS record of type handshake
            if tls:
                client = self.context.wrap_socket(client, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets += [client, upstream]
                if tls:
                    self.tls_connections += 1
                else:
                    self.plaintext_connections += 1
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()
            self._pipe(client, upstream, not tls)

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := source.recv(65536):
                if record:
                    with self.lock:
                        self.plaintext += data
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.close()


@contextlib.contextmanager
def proxied(target: int, terminate_tls: bool = True) -> Iterator[SniffingProxy]:
    proxy = SniffingProxy(target, terminate_tls)
    try:
        yield proxy
    finally:
        proxy.close()


class PasswordSentinel(SentinelProcess):
    """A sentinel of its own (quorum 1) with a password, authenticating to the master."""

    def config(self) -> str:
        return (
            f"requirepass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor {MASTER_SET} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel auth-pass {MASTER_SET} {SENTINEL_SIDE_PASSWORD}\n"
        )

    def start(self) -> SentinelProcess:
        super().start()

        def knows_master() -> bool:
            with redis.Redis(
                port=self.port, password=SENTINEL_PASSWORD, decode_responses=True, socket_timeout=2
            ) as client:
                flags = client.sentinel_master(MASTER_SET)["flags"]
                return "master" in flags and "s_down" not in flags

        wait_until(knows_master, "the sentinel to see its master")
        return self


@dataclass
class Topology:
    master: SniffingProxy  # the master, behind its proxy (the address the sentinel names)
    sentinel: SniffingProxy  # the sentinel, behind its proxy
    direct_sentinel: int  # the sentinel's own (plaintext) port


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    master = RedisProcess(
        tmp_path / "master",
        None,
        "--requirepass", SENTINEL_SIDE_PASSWORD,
        "--user", "svc", "on", f">{SERVICE_PASSWORD}", "~*", "&*", "+@all",
    ).start()  # fmt: skip
    try:
        with proxied(master.port) as master_proxy:
            sentinel = PasswordSentinel(tmp_path / "sentinel", master_proxy.port)
            try:
                sentinel.start()
                with proxied(sentinel.port) as sentinel_proxy:
                    yield Topology(master_proxy, sentinel_proxy, sentinel.port)
            finally:
                sentinel.stop()
    finally:
        master.stop()


def settings(sentinel_port: int, ca: Path, scheme: str = "rediss") -> Settings:
    return Settings(
        _env_file=None,
        cleanup_interval_seconds=0,
        log_level="WARNING",
        redis_mode="sentinel",
        redis_sentinel_hosts=[f"127.0.0.1:{sentinel_port}"],
        redis_master_set=MASTER_SET,
        redis_sentinel_password=SENTINEL_PASSWORD,
        redis_url=f"{scheme}://svc:{SERVICE_PASSWORD}@unused:6379/0",
        redis_tls_ca_certs=str(ca),
        redis_timeout_seconds=5,
    )


async def test_rediss_in_sentinel_mode_speaks_tls_to_sentinels_and_master(
    topology: Topology,
) -> None:
    chosen = settings(topology.sentinel.port, CERT)
    assert await unusable_setting(chosen, chosen.redis_connection_url) == (None, None)

    async with running_app(chosen) as client:
        session = await create_session(client, "u-tls", title="over TLS")
        assert (await client.get("/ready")).status_code == 200

    assert topology.sentinel.plaintext_connections == 0, bytes(topology.sentinel.plaintext[:200])
    assert topology.sentinel.tls_connections > 0
    assert topology.master.tls_connections > 0
    # The sentinel's own plaintext connections to the master do pass through its proxy;
    # none carries the service's password.
    assert SERVICE_PASSWORD.encode() not in topology.master.plaintext
    async with Redis(
        port=topology.master.target,
        username="svc",
        password=SERVICE_PASSWORD,
        decode_responses=True,
    ) as raw:
        key = Keys("fms").session("u-tls", session["session_id"])
        assert await raw.hget(key, "t") == "over TLS"


async def test_the_change_feed_subscribes_over_tls_in_sentinel_mode(topology: Topology) -> None:
    """The feed's subscription holds a connection of its own, outside the pool, to the
    master the sentinels name. It speaks TLS too: a change through one instance wakes a
    watcher on another. (It once refused the pool's ssl_* settings and never subscribed.)"""
    chosen = settings(topology.sentinel.port, CERT)

    async with running_app(chosen) as one, running_app(chosen) as two:
        await wakes_across_instances(one, two)

    assert topology.sentinel.plaintext_connections == 0, bytes(topology.sentinel.plaintext[:200])
    assert SERVICE_PASSWORD.encode() not in topology.master.plaintext
    # The sentinel's own plaintext link SUBSCRIBEs too, but never to the feed's channel.
    assert Keys("fms").feed_channel().encode() not in topology.master.plaintext


async def test_an_untrusted_sentinel_certificate_is_named_at_start(topology: Topology) -> None:
    chosen = settings(topology.sentinel.port, UNTRUSTED)

    problem, outage = await unusable_setting(chosen, chosen.redis_connection_url)

    assert outage is None, outage
    assert problem is not None and problem.startswith("invalid REDIS_URL"), problem
    assert "certificate verify failed" in problem
    assert SERVICE_PASSWORD.encode() not in topology.master.plaintext


async def test_tls_to_a_sentinel_that_does_not_speak_it_never_falls_back_to_plaintext(
    topology: Topology,
) -> None:
    # The sentinel's own plaintext port, behind a proxy that only records what it is sent.
    with proxied(topology.direct_sentinel, terminate_tls=False) as plain:
        chosen = settings(plain.port, CERT)

        problem, outage = await unusable_setting(chosen, chosen.redis_connection_url)

    # A plaintext server answers a TLS hello with an error (a wrong TLS record: named at
    # start) or waits for the rest of a command (a timeout: an outage, 503 until fixed).
    assert (problem or outage) is not None
    if problem is not None:
        assert "TLS handshake failed" in problem, problem
    assert plain.plaintext.startswith(b"\x16"), "it opened with a TLS handshake"
    assert SENTINEL_PASSWORD.encode() not in plain.plaintext
