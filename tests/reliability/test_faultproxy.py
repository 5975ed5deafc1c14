"""The fault proxy of the outcome tests (``tests/support/faultproxy.py``): bytes pass unchanged until a fault is
armed, and each fault happens exactly where it is asked for — on a toy request/reply server, then on PostgreSQL
and Redis themselves."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import make_url

import redis
from tests.support.faultproxy import FaultProxy, proxied_url, resp


class RecordingServer:
    """A TCP server that answers each chunk it receives with ``b"ok:" + chunk`` and records what it got."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self.received += data
                try:
                    conn.sendall(b"ok:" + data)
                except OSError:
                    return

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.listener.close()


class EchoServer(RecordingServer):
    """Echoes every byte back (for the transparency of large transfers)."""

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer()
    yield s
    s.close()


@pytest.fixture
def proxy(server: RecordingServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as p:
        yield p


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    return sock


def ask(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(65536)


def refused(port: int) -> bool:
    """Whether a new connection is refused (closed before it can be used)."""
    with contextlib.suppress(OSError), connect(port) as sock:
        sock.sendall(b"ping")
        return sock.recv(100) == b""
    return True


def test_bytes_pass_unchanged_both_ways() -> None:
    echo = EchoServer()
    try:
        with FaultProxy(echo.port) as proxy, connect(proxy.port) as sock:
            payload = os.urandom(3 * 1024 * 1024)
            received = bytearray()

            def read() -> None:
                while len(received) < len(payload):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    received.extend(chunk)

            reader = threading.Thread(target=read)
            reader.start()
            sock.sendall(payload)
            reader.join(30)
            assert bytes(received) == payload
            assert proxy.accepted == 1
            assert proxy.faults == []
    finally:
        echo.close()


def test_drop_reply_forwards_the_request_and_loses_its_reply(server: RecordingServer, proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        assert ask(sock, b"first") == b"ok:first"
        fault = proxy.drop_reply_after(b"COMMIT", refuse_for=0.5)
        sock.sendall(b"please COMMIT now")
        assert sock.recv(100) == b""  # no reply: the connection is closed
        assert proxy.wait_fired(5)
    assert bytes(server.received).endswith(b"please COMMIT now")  # the server did get the request
    assert fault.discarded == len(b"ok:please COMMIT now")
    assert refused(proxy.port)
    time.sleep(0.6)
    with connect(proxy.port) as sock:  # accepted again once the refusal is over
        assert ask(sock, b"again") == b"ok:again"
    assert proxy.refused >= 1


def test_a_pattern_split_across_chunks_is_found(server: RecordingServer, proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        proxy.drop_reply_after(b"EVALSHA", refuse_for=0)
        assert ask(sock, b"xx EVA") == b"ok:xx EVA"
        sock.sendall(b"LSHA yy")
        assert sock.recv(100) == b""
    assert proxy.wait_fired(5)


def test_drop_request_never_reaches_the_server(server: RecordingServer, proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        assert ask(sock, b"one") == b"ok:one"
        proxy.drop_request(b"two", refuse_for=0.3)
        sock.sendall(b"two")
        assert sock.recv(100) == b""
    assert proxy.wait_fired(5)
    assert b"two" not in server.received
    assert refused(proxy.port)


def test_refuse_for_and_kill_all(server: RecordingServer, proxy: FaultProxy) -> None:
    a, b = connect(proxy.port), connect(proxy.port)
    with a, b:
        assert ask(a, b"a") == b"ok:a"
        assert ask(b, b"b") == b"ok:b"
        proxy.refuse_for(0.3)
        assert refused(proxy.port)
        assert ask(a, b"still") == b"ok:still"  # open connections are not touched by a refusal
        assert proxy.kill_all() == 2
        assert a.recv(100) == b""
        assert b.recv(100) == b""
    time.sleep(0.35)
    with connect(proxy.port) as c:
        assert ask(c, b"c") == b"ok:c"


def test_a_fault_fires_once(server: RecordingServer, proxy: FaultProxy) -> None:
    proxy.drop_reply_after(b"x", refuse_for=0)
    with connect(proxy.port) as sock:
        sock.sendall(b"x")
        assert sock.recv(100) == b""
    assert proxy.wait_fired(5)
    with connect(proxy.port) as sock:
        assert ask(sock, b"x") == b"ok:x"


def test_skip_lets_the_first_matches_through(server: RecordingServer, proxy: FaultProxy) -> None:
    proxy.drop_reply_after(b"COMMIT", refuse_for=0, skip=2)
    with connect(proxy.port) as sock:
        assert ask(sock, b"COMMIT 1") == b"ok:COMMIT 1"
        assert ask(sock, b"COMMIT 2") == b"ok:COMMIT 2"
        sock.sendall(b"COMMIT 3")
        assert sock.recv(100) == b""
    assert proxy.wait_fired(5)


def test_resp_and_proxied_url() -> None:
    assert resp("GET", "k", 1) == b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$1\r\n1\r\n"
    assert proxied_url("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", 999) == \
        "postgresql+psycopg://postgres@127.0.0.1:999/postgres"
    assert proxied_url("redis://127.0.0.1:6379/0", 7) == "redis://127.0.0.1:7/0"


# --------------------------------------------------------------------------- the real protocols


@pytest.mark.postgres
def test_postgres_through_the_proxy(postgres_url: str) -> None:
    u = make_url(postgres_url)
    assert u.port is not None

    def connect_to(port: int) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host="127.0.0.1", port=port, user=u.username, dbname=u.database, autocommit=True,
                               connect_timeout=5)

    with FaultProxy(u.port) as proxy, connect_to(u.port) as direct:
        # (a schema of its own: nothing of the store's schema changes, even if this test fails half-way)
        direct.execute("DROP SCHEMA IF EXISTS faultproxy CASCADE")
        direct.execute("CREATE SCHEMA faultproxy")
        try:
            with connect_to(proxy.port) as c:
                c.execute("CREATE TABLE faultproxy.probe (n integer)")
                big = "x" * 200_000
                assert c.execute("SELECT %s::text", (big,)).fetchone() == (big,)
                proxy.drop_reply_after(b"INSERT INTO faultproxy.probe", refuse_for=0.5)
                with pytest.raises(psycopg.OperationalError):
                    c.execute("INSERT INTO faultproxy.probe VALUES (1)")
            assert proxy.wait_fired(5)
            with pytest.raises(psycopg.OperationalError):
                connect_to(proxy.port).close()  # refused
            # The truth, from the server itself: the insert was committed, though its reply was lost.
            assert direct.execute("SELECT count(*) FROM faultproxy.probe").fetchone() == (1,)
        finally:
            direct.execute("DROP SCHEMA faultproxy CASCADE")


@pytest.mark.redis
def test_redis_through_the_proxy(redis_url: str) -> None:
    port = make_url(redis_url).port
    assert port is not None
    with FaultProxy(port) as proxy:
        client = redis.Redis.from_url(proxied_url(redis_url, proxy.port), retry=Retry(NoBackoff(), 0),
                                      socket_timeout=5)
        direct = redis.Redis.from_url(redis_url)
        try:
            direct.delete("faultproxy:k")
            big = b"y" * 500_000
            client.set("faultproxy:big", big)
            assert client.get("faultproxy:big") == big
            proxy.drop_reply_after(resp("INCRBY", "faultproxy:k", 1), refuse_for=0.3)  # redis-py's incr
            with pytest.raises(redis.ConnectionError):
                client.incr("faultproxy:k")
            assert proxy.wait_fired(5)
            assert direct.get("faultproxy:k") == b"1"  # applied, though its reply was lost
            time.sleep(0.35)
            assert client.incr("faultproxy:k") == 2
        finally:
            direct.delete("faultproxy:k", "faultproxy:big")
            client.close()
            direct.close()
