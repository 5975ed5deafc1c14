"""A real Redis for the test suite, started and thrown away by the tests themselves.

``throwaway_redis()`` starts Debian's ``redis-server`` (looked up on ``PATH`` and in ``/usr/bin``) on a free
loopback port, its data in a fresh temporary directory, with the durability the store documents for "no
acknowledged event lost": ``--appendonly yes --appendfsync always`` and no RDB snapshots (``--save ''``). On
exit the server is killed and its directory removed. :class:`RedisServer` can also kill the server
(``SIGKILL``) and start it again on the same port and data, for the durability tests.

When ``redis-server`` is missing the helpers raise :class:`RedisUnavailable`. Under CI (``CI=true``) a test
must let that error fail the run; elsewhere :func:`require_redis` turns it into a skip with the reason.
``SESSIONFLOW_TEST_REDIS_URL`` names an existing server to use instead (it is flushed between tests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.postgres import free_port, in_ci

__all__ = ["ENV_REDIS_URL", "RedisServer", "RedisUnavailable", "find_redis_server", "redis_url", "require_redis",
           "reset_redis", "throwaway_redis"]

#: The environment variable that names an existing Redis server to test against.
ENV_REDIS_URL = "SESSIONFLOW_TEST_REDIS_URL"
_READY_TIMEOUT = 20.0


class RedisUnavailable(RuntimeError):
    """No Redis server can be started here (``redis-server`` is missing)."""


def find_redis_server() -> Path:
    """The ``redis-server`` binary, from ``PATH`` or ``/usr/bin``."""
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
                                             else None)
    if found is None:
        raise RedisUnavailable(
            "redis-server not found on PATH; install Debian's `redis-server` package (`make test` does so when "
            f"run as root) or set {ENV_REDIS_URL} to an existing server")
    return Path(found)


class RedisServer:
    """One ``redis-server`` process on ``port`` with its data in ``directory``; ``appendfsync`` as given."""

    def __init__(self, directory: Path, *, appendfsync: str = "always", binary: Path | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        self.binary = binary if binary is not None else find_redis_server()
        self.directory = directory
        self.appendfsync = appendfsync
        #: More command-line options (e.g. ``--replicaof host port``).
        self.extra = extra
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (on a new free port the first time, on the same port and data afterwards)."""
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - handed to the process
            try:
                self.process = subprocess.Popen(
                    [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                     "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
                     "--protected-mode", "no", "--daemonize", "no", "--logfile", "", *self.extra],
                    stdout=log, stderr=subprocess.STDOUT)
            finally:
                log.close()
            if self._wait_ready():
                return
            self.kill()
        raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        import redis

        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
                try:
                    if client.ping():
                        return True
                finally:
                    client.close()
            except redis.RedisError:
                time.sleep(0.02)
        return False

    def kill(self) -> None:
        """``SIGKILL`` the server (no shutdown, no final save) and wait for it to be gone."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.directory / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextlib.contextmanager
def throwaway_redis(appendfsync: str = "always") -> Iterator[RedisServer]:
    """A private ``redis-server`` (AOF on, ``appendfsync`` as given); killed and removed on exit."""
    binary = find_redis_server()
    root = Path(tempfile.mkdtemp(prefix="sessionflow-redis-"))
    server = RedisServer(root, appendfsync=appendfsync, binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def redis_url_for_tests() -> Iterator[str]:
    """The Redis URL for the tests: ``$SESSIONFLOW_TEST_REDIS_URL``, or a throwaway server."""
    url = os.environ.get(ENV_REDIS_URL, "").strip()
    if url:
        yield url
        return
    with throwaway_redis() as server:
        yield server.url


def reset_redis(url: str) -> None:
    """Empty the test server's database so each test starts from nothing."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def require_redis(error: RedisUnavailable) -> NoReturn:
    """Turn a missing Redis into a pytest skip — except under CI, where it is an error."""
    if in_ci():
        raise error
    pytest.skip(f"Redis unavailable: {error}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """One Redis server for the whole test run (per xdist worker); import this fixture into a conftest."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(redis_url_for_tests())
        except RedisUnavailable as error:
            require_redis(error)
        yield url
