"""A TCP proxy in front of a server port that loses replies, requests and connections on demand.

The tests of "what does a write report when its connection breaks" need the connection to break at one exact
place: after the server received (and committed) a write, before its reply reaches the client.
:class:`FaultProxy` sits between the client and the server (PostgreSQL, Redis, anything over TCP) and passes the
bytes through unchanged in both directions until it is armed:

* :meth:`FaultProxy.drop_reply_after` — the next client-to-server chunk containing ``pattern`` is forwarded to
  the server, the server's reply to it is read and thrown away, both sockets of that connection are closed, and
  for ``refuse_for`` seconds from then on new connections are refused (accepted and closed at once);
* :meth:`FaultProxy.drop_request` — the next client-to-server chunk containing ``pattern`` is NOT forwarded:
  the connection is closed at once (the server never sees the request), then new connections are refused for
  ``refuse_for`` seconds;
* :meth:`FaultProxy.refuse_for` — refuse new connections for a while;
* :meth:`FaultProxy.kill_all` — close every open connection now.

A fault fires once. ``kill_all=True`` also closes every other open connection when it fires (a pool's idle
connections too: the client has no way left to the server), and ``skip=n`` lets the first ``n`` matching chunks
through (to fault a later step of an operation of several). The refusal begins before the faulted connection is
closed, so a client that reconnects the moment it notices cannot slip in.

Patterns are plain bytes of the wire protocol: for PostgreSQL the SQL text of a statement (``b"COMMIT"``,
``b"INSERT INTO session_events"``; a statement psycopg has prepared after repeated use travels by name only,
so arm the proxy on connections that have not run it often), for Redis a command and its arguments as RESP
(``b"EVALSHA"``, a script's SHA1; :func:`resp` builds the bytes of a command). A pattern split across two
chunks is still found. The reply counts as complete once the server has sent something and then nothing for
``settle`` seconds (or its connection ended).

Each accepted connection gets two threads, one per direction, so neither direction can block the other.
Standard library only. Use it as a context manager::

    with FaultProxy(server_port) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/postgres"
        proxy.drop_reply_after(b"COMMIT", refuse_for=1.0)
        ...                     # the write whose COMMIT reply is lost
        assert proxy.wait_fired(5)
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Fault", "FaultProxy", "proxied_url", "resp"]

_CHUNK = 65536
#: How often blocked threads look at their flags (seconds).
_POLL = 0.02


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` has data (or its end) to read within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(int(timeout * 1000)))


def resp(*args: str | bytes | int) -> bytes:
    """The RESP encoding of a Redis command (as redis-py sends it), e.g. to build a pattern that names one
    script and its first arguments: ``resp("EVALSHA", sha, 0, "sessionflow:", 1)`` (a prefix of the command's
    bytes: leave the array header out with ``[n:]`` slicing if only the arguments matter)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        value = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


def proxied_url(url: str, port: int, host: str = "127.0.0.1") -> str:
    """``url`` with its host and port replaced by ``host:port`` (user, password, path and query kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class Fault:
    """One armed fault: what to look for, what to do, and what happened."""

    kind: str  # "drop_reply" or "drop_request"
    pattern: bytes
    refuse_for: float
    settle: float
    #: Also close every other open connection when the fault is carried out.
    kill_all: bool = False
    #: How many chunks containing the pattern still pass untouched before the one the fault is for.
    skip: int = 0
    #: Set once the fault has been carried out (the connection closed, the refusal begun).
    done: threading.Event = field(default_factory=threading.Event)
    #: The reply bytes thrown away (``drop_reply``).
    discarded: int = 0
    #: The request chunk that matched.
    request: bytes = b""


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = False
        self.doomed: Fault | None = None
        self.doomed_at = 0.0
        self.last_reply = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)

    # ------------------------------------------------------------------ client -> server

    def client_to_server(self) -> None:
        keep = b""
        try:
            while not self.closed:
                if not _readable(self.client, _POLL):
                    continue
                data = self.client.recv(_CHUNK)
                if not data:
                    break
                window = keep + data
                overlap = self.proxy._longest_pattern()
                keep = window[-overlap:] if overlap else b""
                fault = self.proxy._take(window) if self.doomed is None else None
                if fault is not None:
                    fault.request = data
                    if fault.kind == "drop_request":
                        self.proxy._carry_out(fault, self)
                        return
                    self.doomed_at = time.monotonic()
                    self.doomed = fault  # before the request goes on: its reply is the server's next bytes
                self.upstream.sendall(data)
        except (OSError, ValueError):  # closed meanwhile (by kill_all, the other direction, a fault)
            pass
        finally:
            if self.doomed is None:
                self.close()

    # ------------------------------------------------------------------ server -> client

    def server_to_client(self) -> None:
        try:
            while not self.closed:
                if not _readable(self.upstream, _POLL):
                    if self._reply_complete():
                        self._finish()
                        return
                    continue
                data = self.upstream.recv(_CHUNK)
                if not data:
                    break
                fault = self.doomed
                if fault is not None:
                    fault.discarded += len(data)
                    self.last_reply = time.monotonic()
                    continue
                self.client.sendall(data)
        except (OSError, ValueError):  # closed meanwhile (by kill_all, the other direction, a fault)
            pass
        if self.doomed is not None:
            self._finish()
        else:
            self.close()

    def _reply_complete(self) -> bool:
        fault = self.doomed
        if fault is None:
            return False
        now = time.monotonic()
        if fault.discarded and now - self.last_reply >= fault.settle:
            return True
        return now - self.doomed_at >= self.proxy.reply_timeout

    def _finish(self) -> None:
        fault = self.doomed
        if fault is None:
            self.close()
        else:
            self.proxy._carry_out(fault, self)


class FaultProxy:
    """A TCP proxy on ``127.0.0.1`` (a free port, :attr:`port`) in front of ``upstream_host:upstream_port``.

    Args:
        upstream_port: the server's port.
        upstream_host: the server's address.
        settle: seconds of silence after the server's first reply bytes that end a reply to be dropped.
        reply_timeout: the longest wait for a reply to be dropped (then the connection is closed anyway).
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", *, settle: float = 0.05,
                 reply_timeout: float = 10.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.settle = settle
        self.reply_timeout = reply_timeout
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.settimeout(_POLL)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._threads: list[threading.Thread] = []
        self._armed: Fault | None = None
        self._last_armed: Fault | None = None
        self._refuse_until = 0.0
        self._closing = False
        self._acceptor: threading.Thread | None = None
        #: Connections passed through, and connections refused.
        self.accepted = 0
        self.refused = 0
        #: Every fault carried out, in order.
        self.faults: list[Fault] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._acceptor is None:
            self._acceptor = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
            self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting, close every connection and wait for the proxy's threads."""
        self._closing = True
        if self._acceptor is not None:
            self._acceptor.join(5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.kill_all()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ faults

    def drop_reply_after(self, pattern: bytes, refuse_for: float, *, settle: float | None = None,
                         kill_all: bool = False, skip: int = 0) -> Fault:
        """Arm: the next client-to-server chunk containing ``pattern`` is forwarded, the server's reply to it read
        and thrown away, the connection closed on both sides, and new connections refused for ``refuse_for``
        seconds from then (``kill_all``: every other open connection is closed at that moment too, so the client
        has no way left to the server; ``skip``: that many chunks containing ``pattern`` pass untouched first).
        Replaces a fault armed before and not yet carried out."""
        return self._arm(Fault("drop_reply", bytes(pattern), refuse_for,
                               self.settle if settle is None else settle, kill_all, skip))

    def drop_request(self, pattern: bytes, refuse_for: float, *, kill_all: bool = False, skip: int = 0) -> Fault:
        """Arm: the next client-to-server chunk containing ``pattern`` is not forwarded; the connection is closed
        on both sides and new connections are refused for ``refuse_for`` seconds from then (``kill_all`` and
        ``skip``: as for :meth:`drop_reply_after`)."""
        return self._arm(Fault("drop_request", bytes(pattern), refuse_for, 0.0, kill_all, skip))

    def disarm(self) -> None:
        """Forget the fault armed and not yet carried out, if any."""
        with self._lock:
            self._armed = None

    def refuse_for(self, seconds: float) -> None:
        """Refuse new connections (accept and close them at once) for ``seconds`` from now."""
        with self._lock:
            self._refuse_until = max(self._refuse_until, time.monotonic() + seconds)

    def stop_refusing(self) -> None:
        """Accept connections again now."""
        with self._lock:
            self._refuse_until = 0.0

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def kill_all(self) -> int:
        """Close every open connection (both sides) now; returns how many."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()
        return len(pairs)

    @property
    def connections(self) -> int:
        """How many connections are open."""
        with self._lock:
            return len(self._pairs)

    def wait_fired(self, timeout: float = 5.0) -> bool:
        """Wait until the last armed fault was carried out; whether it was."""
        with self._lock:
            fault = self._last_armed
        return fault is not None and fault.done.wait(timeout)

    @property
    def fired(self) -> bool:
        """Whether the last armed fault was carried out."""
        with self._lock:
            fault = self._last_armed
        return fault is not None and fault.done.is_set()

    def _arm(self, fault: Fault) -> Fault:
        if not fault.pattern:
            raise ValueError("an empty pattern")
        with self._lock:
            self._armed = fault
            self._last_armed = fault
        return fault

    def _longest_pattern(self) -> int:
        armed = self._armed
        return len(armed.pattern) - 1 if armed is not None else 0

    def _take(self, window: bytes) -> Fault | None:
        """The armed fault if ``window`` holds its pattern (it is disarmed: a fault fires once)."""
        if self._armed is None:
            return None
        with self._lock:
            fault = self._armed
            if fault is None or fault.pattern not in window:
                return None
            if fault.skip > 0:
                fault.skip -= 1
                return None
            self._armed = None
            return fault

    def _carry_out(self, fault: Fault, pair: _Pair) -> None:
        """End ``fault`` on ``pair``: the refusal begins (and, with ``kill_all``, the other connections are closed)
        before the pair is, so that the client, which notices the close at once, cannot get a connection in
        between; then the fault is done."""
        with self._lock:
            first = not any(f is fault for f in self.faults)
            if first:
                self._refuse_until = max(self._refuse_until, time.monotonic() + fault.refuse_for)
                self.faults.append(fault)
            others = [p for p in self._pairs if p is not pair] if first and fault.kill_all else []
        for other in others:
            other.close()
        pair.close()
        fault.done.set()

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    # ------------------------------------------------------------------ accepting

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._closing:
                    return
                time.sleep(_POLL)
                continue
            if self._closing or self.refusing:
                with self._lock:
                    self.refused += 1
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)  # blocking sends; reads wait with poll (see _readable)
            pair = _Pair(self, client, upstream)
            threads = [threading.Thread(target=pair.client_to_server, daemon=True, name=f"faultproxy-{self.port}-c2s"),
                       threading.Thread(target=pair.server_to_client, daemon=True, name=f"faultproxy-{self.port}-s2c")]
            with self._lock:
                self.accepted += 1
                self._pairs.add(pair)
                self._threads = [t for t in self._threads if t.is_alive()] + threads
            for thread in threads:
                thread.start()
