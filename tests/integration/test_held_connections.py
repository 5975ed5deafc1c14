"""Connections threads keep between hot-path operations: bounded by the pool, given back, replaced when broken."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from sessionflow import SessionManager
from tests.support.backends import reset_postgres


def _pool(manager: SessionManager) -> Any:
    return manager.store.engine.pool  # type: ignore[attr-defined]


def _server_connections(url: str) -> int:
    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                         autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _run_threads(n: int, work: Any) -> None:
    errors: list[BaseException] = []
    gate = threading.Barrier(n)

    def body(i: int) -> None:
        try:
            gate.wait()
            work(i)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def _until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_threads_hold_at_most_pool_size_and_never_exceed_the_pool(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    with SessionManager.open(postgres_url, pool_size=2, max_overflow=2, pool_timeout=10) as manager:
        store: Any = manager.store
        peak = 0
        lock = threading.Lock()

        def work(i: int) -> None:
            nonlocal peak
            sid = manager.create(performer_id=f"u{i}").id
            for _ in range(20):
                manager.touch(sid, performer_id=f"u{i}")
                manager.get(sid)
                with lock:
                    peak = max(peak, _pool(manager).checkedout())
            time.sleep(0.2)  # still alive (and holding) while the others work

        _run_threads(8, work)  # more threads than the pool has connections
        assert store._connections.holders <= 2
        assert peak <= 4  # pool_size + max_overflow: held connections are counted in the pool
        assert _server_connections(postgres_url) <= 4
        assert len(manager.list(limit=100)) == 8


def test_a_thread_that_ends_gives_its_connection_back(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    with SessionManager.open(postgres_url, pool_size=3) as manager:
        store: Any = manager.store

        def work(i: int) -> None:
            manager.create(performer_id=f"u{i}")

        _run_threads(3, work)
        # the threads ended: their slots were dropped, so the connections went back to the pool
        assert _until(lambda: store._connections.holders == 0 and _pool(manager).checkedout() == 0)
        # and new threads can hold them again
        _run_threads(3, work)
        assert manager.count() == 6


def test_close_gives_held_connections_back(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    manager = SessionManager.open(postgres_url, pool_size=2)
    manager.create(performer_id="u")  # this thread now holds one
    assert manager.store._connections.holders == 1  # type: ignore[attr-defined]
    assert _pool(manager).checkedout() == 1
    manager.close()
    assert _until(lambda: _server_connections(postgres_url) == 0)


def test_a_broken_held_connection_is_replaced(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    with SessionManager.open(postgres_url, pool_size=2) as manager:
        store: Any = manager.store
        sid = manager.create(performer_id="u").id
        held = store._local.connection
        pid = held.driver_connection.info.backend_pid
        u = make_url(postgres_url)
        with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                             dbname=u.database, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.1)
        assert manager.touch(sid, performer_id="u").version == 2  # retried on a new connection
        assert store._local.connection is not held
        assert store._local.connection.driver_connection.info.backend_pid != pid
        assert store._connections.holders == 1
        assert [e.version for e in manager.history(sid)] == [1, 2]


@pytest.mark.parametrize(("pool_size", "max_overflow", "limit"), [(1, 0, 0), (2, 0, 1), (4, 0, 2), (5, 10, 5)])
def test_idle_holders_never_starve_other_threads(postgres_url: str, pool_size: int, max_overflow: int,
                                                 limit: int) -> None:
    """Holders are at most half the pool: with every holder alive and idle, the other threads still get
    connections (they would wait out ``pool_timeout`` and fail otherwise)."""
    reset_postgres(postgres_url)
    with SessionManager.open(postgres_url, pool_size=pool_size, max_overflow=max_overflow,
                             pool_timeout=3) as manager:
        store: Any = manager.store
        assert store._connections.hold == limit
        release = threading.Event()
        ready = threading.Barrier(limit + 2)

        def holder(i: int) -> None:
            manager.create(performer_id=f"h{i}")
            ready.wait()
            release.wait(30)  # alive and idle, keeping its connection

        holders = [threading.Thread(target=holder, args=(i,)) for i in range(limit + 1)]
        for t in holders:
            t.start()
        try:
            ready.wait(30)
            assert store._connections.holders == limit
            _run_threads(6, lambda i: [manager.create(performer_id=f"b{i}") for _ in range(5)])
        finally:
            release.set()
            for t in holders:
                t.join()
        assert manager.count() == limit + 1 + 30


def test_closing_the_store_leaves_a_connection_in_use_to_its_operation(tmp_path: Any) -> None:
    """A thread's append waits for the SQLite write lock another connection holds: closing the store meanwhile
    returns at once (closing that connection would wait out the busy timeout), and the connection is given back
    when the append ends."""
    import sqlite3

    path = tmp_path / "busy.db"
    manager = SessionManager.open(f"sqlite:///{path}")
    manager.create(performer_id="p")  # the schema, and the main thread's own connection
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the write lock, held
    outcome: list[object] = []

    def append() -> None:
        try:
            outcome.append(manager.create(performer_id="p"))
        except BaseException as error:  # reported below
            outcome.append(error)

    writer = threading.Thread(target=append)
    writer.start()
    store = manager.store
    assert _until(lambda: store._connections.holders == 2)  # type: ignore[attr-defined]  # the writer's, in use
    time.sleep(0.2)  # the writer is waiting for the lock
    started = time.monotonic()
    manager.close()
    assert time.monotonic() - started < 2.0, "closing waited for the connection in use"
    assert writer.is_alive()
    blocker.execute("COMMIT")
    blocker.close()
    writer.join(30)
    assert len(outcome) == 1
    assert _until(lambda: store._connections.holders == 0)  # type: ignore[attr-defined]  # given back at the end
