"""A real Redis for tests: the one the environment names, the local one, or a throwaway server.

``redis_url()``: ``LLMRELAY_TEST_REDIS_URL`` when set; otherwise 127.0.0.1:6379 when a server
answers there; otherwise a ``redis-server`` started for this test session when the binary is
installed; otherwise None (tests skip with :data:`SKIP_REASON`). Tests use their own key prefix
(:func:`unique_prefix`) and DB :data:`TEST_DB`, so parallel runs and other users of the shared
server are not disturbed.

``RedisServer(port)`` starts a private ``redis-server`` that a test may stop and restart (never
stop the shared one).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

__all__ = ["redis_url", "RedisServer", "unique_prefix", "free_port", "SKIP_REASON", "TEST_DB"]

#: The database number our tests use on a shared server.
TEST_DB = 11
SKIP_REASON = (
    "no Redis available: set LLMRELAY_TEST_REDIS_URL=redis://host:port, run a server on "
    "127.0.0.1:6379, or install redis-server"
)
_started: "RedisServer | None" = None
_resolved: list[str | None] = []


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def unique_prefix(name: str = "t") -> str:
    """A key prefix no other test run uses."""
    return f"llmrelay-test:{name}:{uuid.uuid4().hex[:10]}"


class RedisServer:
    """A private ``redis-server`` on ``port`` (no persistence), stoppable and restartable."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(SKIP_REASON)
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="llmrelay-redis-")
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def redis_url() -> str | None:
    """The URL (with :data:`TEST_DB`) of a Redis the tests may use, or None."""
    global _started
    if _resolved:
        return _resolved[0]
    url = os.environ.get("LLMRELAY_TEST_REDIS_URL")
    if not url and _answers("127.0.0.1", 6379):
        url = f"redis://127.0.0.1:6379/{TEST_DB}"
    if not url and shutil.which("redis-server"):
        try:
            _started = RedisServer()
            atexit.register(_started.close)
            url = _started.url
        except RuntimeError:
            url = None
    _resolved.append(url)
    return url


def delete_matching(url: str, pattern: str) -> None:
    """Delete a test's keys (``pattern`` like ``llmrelay:cache:<prefix>*``) from a shared server."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        for name in client.scan_iter(match=pattern, count=500):
            client.delete(name)
    finally:
        client.close()
