"""The change watchers and the PostgreSQL triggers behind them (migration 0004).

PostgreSQL: the ``sessions`` trigger notifies ``sessionflow_deadline`` only when a deadline is new or becomes
earlier, and only on commit; the ``session_events`` trigger notifies ``sessionflow_events`` once per statement.
The watchers deliver notices, stop and start again, reconnect after their connection is killed, and SQLite's
watcher sees other connections' commits through ``PRAGMA data_version``.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.migrations import alembic_config, schema_drift, upgrade
from sessionflow.adapters.sqlalchemy.notifications import (
    DEADLINE_CHANNEL,
    EVENTS_CHANNEL,
    PostgresChangeWatcher,
    SqliteChangeWatcher,
    watcher_for_engine,
)
from sessionflow.adapters.sqlalchemy.tables import from_millis, to_millis
from sessionflow.application.watching import ChangeWatcher, Notice
from sessionflow.bootstrap import create_store
from sessionflow.testing import ManualClock
from tests.support.backends import reset_postgres


class Notices:
    """A subscriber collecting notices in a queue."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Notice] = queue.Queue()

    def __call__(self, notice: Notice) -> None:
        self.queue.put(notice)

    def next(self, timeout: float = 3.0) -> Notice:
        return self.queue.get(timeout=timeout)

    def drain(self, wait: float = 0.0) -> list[Notice]:
        time.sleep(wait)
        found = []
        while True:
            try:
                found.append(self.queue.get_nowait())
            except queue.Empty:
                return found

    def until(self, kind: str, timeout: float = 3.0) -> Notice:
        end = time.monotonic() + timeout
        while True:
            notice = self.next(max(0.0, end - time.monotonic()))
            if notice.kind == kind:
                return notice


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def pg(postgres_url: str) -> str:
    """The test PostgreSQL, migrated and emptied."""
    create_store(postgres_url).close()
    reset_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def listener(pg: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(_libpq(pg), autocommit=True)
    conn.execute(f"LISTEN {DEADLINE_CHANNEL}")
    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
    yield conn
    conn.close()


def _received(conn: psycopg.Connection[Any], wait: float = 0.3) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in conn.notifies(timeout=wait)]


def _deadline_ms(manager: SessionManager, session_id: Any) -> int:
    expires = manager.get(session_id).expires_at
    assert expires is not None
    return to_millis(expires)


# --------------------------------------------------------------------------- the triggers


def test_the_trigger_notifies_only_a_new_or_earlier_deadline(pg: str, listener: psycopg.Connection[Any]) -> None:
    clock = ManualClock(datetime.now(UTC))
    with SessionManager.open(pg, clock=clock) as manager:
        session = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
        due = _deadline_ms(manager, session.id)
        assert _received(listener) == [(DEADLINE_CHANNEL, str(due)), (EVENTS_CHANNEL, "")]

        clock.advance(timedelta(minutes=1))
        later = manager.touch(session.id, performer_id="u1")  # a later deadline
        assert later.expires_at is not None
        assert to_millis(later.expires_at) > due
        assert _received(listener) == [(EVENTS_CHANNEL, "")]

    engine = create_engine(pg, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT due_at FROM sessions")).scalar_one()
            conn.execute(text("UPDATE sessions SET due_at = due_at"))  # unchanged
            conn.execute(text("UPDATE sessions SET due_at = due_at + 1000"))  # later
            conn.execute(text("UPDATE sessions SET status = status"))  # another column
            assert _received(listener) == []
            conn.execute(text("UPDATE sessions SET due_at = due_at - 5000"))  # earlier
            assert _received(listener) == [(DEADLINE_CHANNEL, str(current - 4000))]
            conn.execute(text("UPDATE sessions SET due_at = NULL"))  # no deadline any more
            assert _received(listener) == []
            conn.execute(text("UPDATE sessions SET due_at = 42"))  # from none to one
            assert _received(listener) == [(DEADLINE_CHANNEL, "42")]
    finally:
        engine.dispose()


def test_notifications_are_sent_on_commit_only(pg: str, listener: psycopg.Connection[Any]) -> None:
    with SessionManager.open(pg) as manager:
        session = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
    _received(listener)
    with psycopg.connect(_libpq(pg)) as writer:  # a transaction, left open
        writer.execute("UPDATE sessions SET due_at = due_at - 1000 WHERE id = %s", (session.id,))
        assert _received(listener) == []
        writer.rollback()
        assert _received(listener) == []
        writer.execute("UPDATE sessions SET due_at = due_at - 2000 WHERE id = %s", (session.id,))
        writer.commit()
        assert [channel for channel, _ in _received(listener)] == [DEADLINE_CHANNEL]


def test_the_events_trigger_notifies_once_per_statement(pg: str, listener: psycopg.Connection[Any]) -> None:
    with SessionManager.open(pg) as manager:
        for _ in range(3):
            manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
        _received(listener)
        with psycopg.connect(_libpq(pg)) as writer:
            writer.execute("CREATE TEMP TABLE copied AS SELECT * FROM session_events")
            writer.execute("UPDATE copied SET record_id = gen_random_uuid(), version = version + 100, position = NULL")
            writer.execute("INSERT INTO session_events SELECT * FROM copied")  # three rows, one statement
            writer.commit()
        assert _received(listener) == [(EVENTS_CHANNEL, "")]


def test_the_migration_installs_and_drops_the_triggers(postgres_url: str) -> None:
    from alembic import command

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = "sf_notify_migration"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    engine = create_engine(url)
    query = text("SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'sessionflow_deadline%' "
                 "OR tgname = 'sessionflow_events_insert'), "
                 "(SELECT count(*) FROM pg_proc WHERE proname IN ('sessionflow_notify_deadline', "
                 "'sessionflow_notify_events'))")
    try:
        upgrade(engine, "0004")
        with engine.connect() as conn:
            assert tuple(conn.execute(query).one()) == (3, 2)
        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "0003")
        with engine.connect() as conn:
            assert tuple(conn.execute(query).one()) == (0, 0)
        upgrade(engine)
        with engine.connect() as conn:
            assert tuple(conn.execute(query).one()) == (3, 2)
        assert schema_drift(engine) == []
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_the_migration_does_nothing_on_sqlite(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                                     "AND name LIKE 'sessionflow_%notify%'")).scalar_one() == 0
        assert schema_drift(store.engine) == []
    finally:
        store.close()


# --------------------------------------------------------------------------- the PostgreSQL watcher


@pytest.fixture
def pg_watcher(pg: str) -> Iterator[tuple[PostgresChangeWatcher, Notices]]:
    engine = create_engine(pg)
    watcher = PostgresChangeWatcher.for_engine(engine)
    notices = Notices()
    watcher.subscribe(notices)
    watcher.start()
    assert watcher.wait_listening(5)
    assert notices.next() == Notice("changed")  # sent once listening begins
    yield watcher, notices
    watcher.stop()
    engine.dispose()


def test_the_postgres_watcher_delivers_deadline_and_events_notices(
        pg: str, pg_watcher: tuple[PostgresChangeWatcher, Notices]) -> None:
    watcher, notices = pg_watcher
    assert isinstance(watcher, ChangeWatcher)
    with SessionManager.open(pg) as manager:
        session = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
        assert notices.next() == Notice("deadline", session.expires_at)
        assert notices.next() == Notice("events")
        manager.start(session.id, performer_id="u1")
        assert notices.next() == Notice("events")
    assert notices.drain(0.1) == []


def test_the_postgres_watcher_reconnects_after_its_connection_is_killed(
        pg: str, pg_watcher: tuple[PostgresChangeWatcher, Notices]) -> None:
    watcher, notices = pg_watcher
    assert watcher.connections == 1
    with psycopg.connect(_libpq(pg), autocommit=True) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()").fetchall()
        assert killed == [(True,)]
    assert notices.until("changed") == Notice("changed")  # listening again: something may have been missed
    assert watcher.connections == 2
    assert watcher.listening
    with SessionManager.open(pg) as manager:
        session = manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
    assert notices.until("deadline") == Notice("deadline", session.expires_at)


def test_the_postgres_watcher_folds_a_burst_and_reports_a_strange_payload(
        pg: str, pg_watcher: tuple[PostgresChangeWatcher, Notices]) -> None:
    _watcher, notices = pg_watcher
    with psycopg.connect(_libpq(pg), autocommit=True) as conn, conn.transaction():
        for ms in (5000, 3000, 4000):
            conn.execute("SELECT pg_notify(%s, %s)", (DEADLINE_CHANNEL, str(ms)))
        conn.execute("SELECT pg_notify(%s, '')", (EVENTS_CHANNEL,))
        conn.execute("SELECT pg_notify(%s, '')", (EVENTS_CHANNEL,))
    received = [notices.next()]
    received += notices.drain(0.2)
    assert received == [Notice("deadline", from_millis(3000)), Notice("events")]
    with psycopg.connect(_libpq(pg), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, 'not a number')", (DEADLINE_CHANNEL,))
    assert notices.next() == Notice("changed")


def test_the_postgres_watcher_stops_and_starts_again(pg: str) -> None:
    engine = create_engine(pg)
    watcher = PostgresChangeWatcher.for_engine(engine)
    notices = Notices()
    unsubscribe = watcher.subscribe(notices)
    try:
        for _ in range(2):
            watcher.start()
            watcher.start()  # idempotent
            assert watcher.wait_listening(5)
            assert notices.until("changed")
            started = time.monotonic()
            watcher.stop()
            assert time.monotonic() - started < 1.0  # the listening thread is woken, not waited out
            watcher.stop()
            assert not watcher.running
            assert not watcher.listening
            assert not [t for t in threading.enumerate() if t.name == "sessionflow-pg-watcher"]
        unsubscribe()
        unsubscribe()
        watcher.start()
        assert watcher.wait_listening(5)
        assert notices.drain(0.1) == []
    finally:
        watcher.stop()
        engine.dispose()


def test_a_failing_subscriber_does_not_stop_the_others(pg: str,
                                                       pg_watcher: tuple[PostgresChangeWatcher, Notices]) -> None:
    watcher, notices = pg_watcher

    def failing(notice: Notice) -> None:
        raise RuntimeError("subscriber failure")

    watcher.subscribe(failing)
    late = Notices()
    watcher.subscribe(late)
    with psycopg.connect(_libpq(pg), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, '')", (EVENTS_CHANNEL,))
    assert notices.next() == Notice("events")
    assert late.next() == Notice("events")
    assert watcher.listening


# --------------------------------------------------------------------------- the SQLite watcher


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "watched.db"
    create_store(f"sqlite:///{path}").close()
    return path


def test_the_sqlite_watcher_sees_commits_of_other_connections(sqlite_file: Path) -> None:
    watcher = SqliteChangeWatcher(sqlite_file, interval=0.02)
    notices = Notices()
    watcher.subscribe(notices)
    watcher.start()
    try:
        assert watcher.wait_listening(5)
        assert notices.next() == Notice("changed")  # sent once watching begins
        assert notices.drain(0.15) == []  # nothing changes: nothing is reported
        with SessionManager.open(f"sqlite:///{sqlite_file}") as manager:
            manager.create(user_id="u1", performer_id="u1", ttl=timedelta(minutes=10))
        started = time.monotonic()
        assert notices.next() == Notice("changed")
        assert time.monotonic() - started < 0.5
        conn = sqlite3.connect(sqlite_file)
        conn.execute("BEGIN")
        conn.execute("UPDATE sessions SET due_at = due_at - 1")
        assert notices.drain(0.15) == []  # not committed yet
        conn.commit()
        conn.close()
        assert notices.next() == Notice("changed")
        assert watcher.changes == 2
    finally:
        watcher.stop()
    assert not watcher.running
    assert not watcher.listening


def test_the_sqlite_watcher_waits_for_a_missing_file_and_stops_at_once(tmp_path: Path) -> None:
    watcher = SqliteChangeWatcher(tmp_path / "later.db", interval=0.02)
    notices = Notices()
    watcher.subscribe(notices)
    watcher.start()
    try:
        assert not watcher.wait_listening(0.2)
        assert not (tmp_path / "later.db").exists()  # the watcher never creates the database
        create_store(f"sqlite:///{tmp_path / 'later.db'}").close()
        assert watcher.wait_listening(6)
        assert notices.next() == Notice("changed")
    finally:
        started = time.monotonic()
        watcher.stop()
        assert time.monotonic() - started < 1.0


def test_watcher_for_engine_fits_the_backend(tmp_path: Path, postgres_url: str) -> None:
    file_engine = create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    memory_engine = create_engine("sqlite://")
    pg_engine = create_engine(postgres_url)
    try:
        sqlite_watcher = watcher_for_engine(file_engine, sqlite_interval=0.5)
        assert isinstance(sqlite_watcher, SqliteChangeWatcher)
        assert sqlite_watcher.interval == 0.5
        assert watcher_for_engine(file_engine, sqlite_interval=None) is None
        assert watcher_for_engine(memory_engine) is None
        assert isinstance(watcher_for_engine(pg_engine), PostgresChangeWatcher)
    finally:
        for engine in (file_engine, memory_engine, pg_engine):
            engine.dispose()
    with pytest.raises(ValueError, match="interval must be positive"):
        SqliteChangeWatcher(tmp_path / "x.db", interval=0)
