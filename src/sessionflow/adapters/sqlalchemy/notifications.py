"""Change watchers for the SQL stores: they report writes made by any process as :class:`Notice` values.

* :class:`PostgresChangeWatcher`: one dedicated psycopg 3 connection in autocommit mode, ``LISTEN`` on the
  channels the triggers of migration 0004 notify (:data:`DEADLINE_CHANNEL`, payload: the new ``due_at`` in
  epoch milliseconds; :data:`EVENTS_CHANNEL`, empty payload), read on a daemon thread. A lost connection is
  opened again with back-off (50 ms, doubling, at most 5 s); each time ``LISTEN`` takes effect the watcher
  sends ``"changed"``, since notifications sent meanwhile were missed.
* :class:`SqliteChangeWatcher`: a daemon thread reads ``PRAGMA data_version`` on its own connection to the
  database file every ``interval`` (100 ms by default) and sends ``"changed"`` when it moves: another
  connection (of any process) committed. SQLite cannot tell what changed.

:func:`watcher_for_engine` builds the one that fits an engine (``None`` for an in-memory SQLite database or
another backend). A watcher sends ``"changed"`` once when it begins watching too: a write committed just
before is then not missed by a subscriber that read the store just before the watcher was listening.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import sqlite3
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.engine import URL

from sessionflow.adapters.sqlalchemy.tables import from_millis
from sessionflow.adapters.watcher_thread import RETRY_START as _RETRY_START
from sessionflow.adapters.watcher_thread import WatcherThread
from sessionflow.application.watching import ChangeWatcher, Notice

__all__ = [
    "DEADLINE_CHANNEL",
    "EVENTS_CHANNEL",
    "PostgresChangeWatcher",
    "SQLITE_POLL_INTERVAL",
    "SqliteChangeWatcher",
    "libpq_params",
    "watcher_for_engine",
]

logger = logging.getLogger("sessionflow.watcher")

#: The channel the ``sessions`` trigger notifies when a deadline is new or earlier (payload: epoch ms).
DEADLINE_CHANNEL: Final = "sessionflow_deadline"
#: The channel the ``session_events`` trigger notifies once per statement that appended events.
EVENTS_CHANNEL: Final = "sessionflow_events"
#: How often the SQLite watcher reads ``PRAGMA data_version`` by default, in seconds.
SQLITE_POLL_INTERVAL: Final = 0.1

_DEFAULT_PORT: Final = "5432"
_CHANGED: Final = Notice("changed")
_EVENTS: Final = Notice("events")


class PostgresChangeWatcher(WatcherThread):
    """Listens on PostgreSQL's :data:`DEADLINE_CHANNEL` and :data:`EVENTS_CHANNEL` and reports the notices.

    Args:
        connect: opens a new psycopg 3 connection (the watcher switches it to autocommit); see
            :meth:`for_engine` to open them like an engine's.
        health_check_interval: seconds of silence after which the connection is checked with ``SELECT 1``
            (a connection lost without the socket noticing is then found).

    Notifications read together are folded: one ``"deadline"`` notice (the earliest deadline) and one
    ``"events"`` notice. A payload that is not a deadline makes a ``"changed"`` notice.
    """

    _thread_name = "sessionflow-pg-watcher"

    def __init__(self, connect: Callable[[], Any], *, health_check_interval: float = 30.0) -> None:
        super().__init__()
        self._connect = connect
        self.health_check_interval = health_check_interval
        self._wake: tuple[socket.socket, socket.socket] | None = None
        #: How many times the watcher (re)connected and began listening.
        self.connections = 0

    @classmethod
    def for_engine(cls, engine: Engine, **options: Any) -> PostgresChangeWatcher:
        """A watcher opening its connections with the connection arguments of ``engine`` (a PostgreSQL one).

        Every host of a multi-host URL (``?host=a:5432&host=b:5432``) and its libpq parameters
        (``target_session_attrs=read-write``, ``connect_timeout``...) are kept: after a failover the watcher
        reconnects to whichever host is then the primary, as the engine's connections do.
        """
        import psycopg  # the optional driver, only when watching PostgreSQL

        if engine.dialect.driver == "psycopg":
            args, kwargs = engine.dialect.create_connect_args(engine.url)
        else:  # another driver's arguments may not be libpq's: connect with libpq's reading of the URL
            args, kwargs = [], libpq_params(engine.url)
        arguments: dict[str, Any] = {**_KEEPALIVES, **kwargs}

        def connect() -> Any:
            return psycopg.connect(*args, **arguments)

        return cls(connect, **options)

    def _prepare(self) -> None:
        self._wake = socket.socketpair()
        for end in self._wake:
            end.setblocking(False)

    def _interrupt(self) -> None:
        if self._wake is not None:
            with contextlib.suppress(OSError):
                self._wake[1].send(b"x")

    def _release(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            for end in wake:
                end.close()

    def _run(self, stopping: threading.Event) -> None:
        wake = self._wake
        assert wake is not None
        delay = _RETRY_START
        while not stopping.is_set():
            try:
                conn = self._connect()
            except Exception as error:
                logger.warning("cannot connect to listen for changes (retrying in %.2f s): %s", delay, error)
                delay = self._retry(stopping, delay)
                continue
            try:
                conn.autocommit = True
                conn.execute(f"LISTEN {DEADLINE_CHANNEL}")
                conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                self.connections += 1
                self._listening.set()
                delay = _RETRY_START
                self._emit(_CHANGED)  # whatever was committed before LISTEN took effect went unannounced
                self._listen(conn, wake[0], stopping)
            except Exception as error:
                if stopping.is_set():
                    break
                logger.warning("lost the connection listening for changes (reconnecting in %.2f s): %s",
                               delay, error)
                self._listening.clear()
                delay = self._retry(stopping, delay)
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    conn.close()

    def _listen(self, conn: Any, wake: socket.socket, stopping: threading.Event) -> None:
        """Read notifications until stopped; raises when the connection fails."""
        fd = conn.fileno()
        while not stopping.is_set():
            readable, _, _ = select.select([fd, wake], [], [], self.health_check_interval)
            if stopping.is_set():
                return
            if wake in readable:
                with contextlib.suppress(OSError):
                    wake.recv(64)
            if not readable:
                conn.execute("SELECT 1")  # raises if the connection is gone; notifications go to the backlog
            self._deliver(list(conn.notifies(timeout=0)))

    def _deliver(self, notifications: list[Any]) -> None:
        earliest: datetime | None = None
        events = changed = False
        for notification in notifications:
            if notification.channel == EVENTS_CHANNEL:
                events = True
                continue
            try:
                deadline = from_millis(int(notification.payload))
            except (TypeError, ValueError, OverflowError):
                changed = True
                continue
            if earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._emit(Notice("deadline", earliest))
        if events:
            self._emit(_EVENTS)
        if changed:
            self._emit(_CHANGED)


class SqliteChangeWatcher(WatcherThread):
    """Polls ``PRAGMA data_version`` of an SQLite database file and reports each change as ``"changed"``.

    Args:
        database: the database file's path (or an SQLite ``file:`` URI with ``uri=True``).
        interval: seconds between two polls (default :data:`SQLITE_POLL_INTERVAL`); a write by another
            connection is reported within about that long.
        uri: ``database`` is a URI.

    A poll is one statement on the watcher's own connection, which reads the WAL index header and takes no
    lock a writer waits for: a few microseconds, ten times a second by default.
    """

    _thread_name = "sessionflow-sqlite-watcher"

    def __init__(self, database: str | Path, *, interval: float = SQLITE_POLL_INTERVAL, uri: bool = False) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.database = str(database)
        self.interval = interval
        self._uri = uri
        #: How many polls saw the database change.
        self.changes = 0

    def _interrupt(self) -> None:
        pass  # the thread waits on the stopping event itself

    def _open(self) -> sqlite3.Connection:
        if self._uri:
            target, uri = self.database, True
        else:  # read-write, never create: a missing file is an error to retry, not a new empty database
            target, uri = Path(self.database).resolve().as_uri() + "?mode=rw", True
        return sqlite3.connect(target, uri=uri, timeout=1.0, isolation_level=None, check_same_thread=False)

    def _run(self, stopping: threading.Event) -> None:
        delay = _RETRY_START
        while not stopping.is_set():
            try:
                conn = self._open()
            except sqlite3.Error as error:
                logger.warning("cannot open %s to watch it (retrying in %.2f s): %s", self.database, delay, error)
                delay = self._retry(stopping, delay)
                continue
            try:
                last = _data_version(conn)
                self._listening.set()
                delay = _RETRY_START
                self._emit(_CHANGED)  # whatever was committed before the first poll went unseen
                while not stopping.wait(self.interval):
                    version = _data_version(conn)
                    if version != last:
                        last = version
                        self.changes += 1
                        self._emit(_CHANGED)
            except sqlite3.Error as error:
                logger.warning("watching %s failed (retrying in %.2f s): %s", self.database, delay, error)
                self._listening.clear()
                delay = self._retry(stopping, delay)
            finally:
                self._listening.clear()
                conn.close()


def _data_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])


#: TCP keepalives for the listening connection (overridden by the engine's own connection arguments), so a
#: connection lost without a reset is noticed in well under a minute.
_KEEPALIVES: Final[Mapping[str, Any]] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                                          "keepalives_count": 3}


def libpq_params(url: URL) -> dict[str, str]:
    """The libpq connection parameters of a PostgreSQL SQLAlchemy ``url``, whatever its driver: ``dbname``,
    ``user``, ``password``, ``host`` and ``port`` — a comma-separated list of each host of SQLAlchemy's multi-host
    form (``?host=a:5432&host=b:5433``), with its port (5432 when it names none) — and every other query parameter
    as it is (``target_session_attrs``, ``sslmode``, ``connect_timeout``...)."""
    params: dict[str, str] = {}
    for name, given in (("dbname", url.database), ("user", url.username), ("password", url.password)):
        if given:
            params[name] = given
    hosts: list[tuple[str, str]] = []
    for name, value in url.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if name == "host":
            hosts.extend(_host_and_port(entry) for entry in values)
        elif name != "port":
            params[name] = values[-1]
    if not hosts and url.host:
        hosts.append((url.host, str(url.port) if url.port is not None else ""))
    if hosts:
        params["host"] = ",".join(host for host, _ in hosts)
    if any(port for _, port in hosts):
        params["port"] = ",".join(port or _DEFAULT_PORT for _, port in hosts)
    elif "port" in url.query:  # one port for every host, as libpq allows
        port = url.query["port"]
        params["port"] = port[-1] if isinstance(port, tuple) else port
    return params


def _host_and_port(entry: str) -> tuple[str, str]:
    """``"a:5432"`` → ``("a", "5432")``; ``"[::1]:5432"`` → ``("::1", "5432")``; a socket directory or a bare host
    name: no port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if entry.startswith("/") or entry.count(":") != 1:
        return entry, ""
    host, _, port = entry.partition(":")
    return host, port


def watcher_for_engine(engine: Engine, *, sqlite_interval: float | None = SQLITE_POLL_INTERVAL,
                       health_check_interval: float = 30.0) -> ChangeWatcher | None:
    """The change watcher for ``engine``'s database (not started), or ``None`` when there is none to watch.

    PostgreSQL (with psycopg 3 installed): a :class:`PostgresChangeWatcher`. An SQLite database file: a
    :class:`SqliteChangeWatcher` polling every ``sqlite_interval`` seconds (``None``: no watcher). An in-memory
    SQLite database, or any other backend: ``None``.
    """
    name = engine.dialect.name
    if name == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return None
        return PostgresChangeWatcher.for_engine(engine, health_check_interval=health_check_interval)
    if name == "sqlite" and sqlite_interval is not None:
        database = engine.url.database
        if not database or database == ":memory:":
            return None
        uri = str(engine.url.query.get("uri", "")).lower() in ("true", "1")
        if uri and "mode=memory" in database:
            return None
        return SqliteChangeWatcher(database, interval=sqlite_interval, uri=uri)
    return None
