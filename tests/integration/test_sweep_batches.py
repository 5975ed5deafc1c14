"""The SQL store's sweep (see ``_expire_due_fast``), in batches of every size — and on SQLite both ways it
claims and writes (from SQLite 3.38, one statement each for a waker's batch; before it, a read of the rows and
per-row statements) — expires each overdue session exactly once, writes the rows and events sessionflow's fold
expects, and leaves sessions that are not due alone."""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy

from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore, install_sqlite_pragmas
from sessionflow.adapters.sqlalchemy.migrations import upgrade
from sessionflow.testing import ManualClock

_BATCH_SIZES = [1, 7, 100, 200, 229, 230, 231, 1000]


@pytest.mark.parametrize("batch_size", _BATCH_SIZES)
def test_every_batch_size_expires_each_overdue_session_once(sql_url: str, clock: ManualClock,
                                                            batch_size: int) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager:
        _sweep_in_batches(manager, clock, batch_size)


@pytest.mark.parametrize("batch_size", _BATCH_SIZES)
def test_sqlite_before_3_38_expires_each_overdue_session_once(tmp_path: Path, clock: ManualClock,
                                                              batch_size: int) -> None:
    """An SQLite library before 3.38 (as the driver module reports it: here a copy of ``sqlite3`` given to
    the engine with SQLAlchemy's ``module`` option) is swept with a read of the rows and per-row statements."""
    statements: list[str] = []
    with (_sqlite_reporting(tmp_path / "sweep.db", (3, 37, 2), statements) as engine,
          SessionManager(SqlAlchemyEventStore(engine, owns_engine=False), clock=clock) as manager):
        _sweep_in_batches(manager, clock, batch_size)
    assert any("FROM sessions WHERE due_at <=" in s for s in statements)  # (the trace saw the sweeps' reads)
    assert not [s for s in statements if "json_group_array" in s or "sessionflow_expiry" in s]


@contextmanager
def _sqlite_reporting(path: Path, version: tuple[int, int, int], statements: list[str]
                      ) -> Iterator[sqlalchemy.Engine]:
    """An engine on the database file ``path`` whose driver module reports SQLite ``version``; every statement
    its connections run is appended to ``statements``."""
    module = types.ModuleType("sqlite3")
    module.__dict__.update(vars(sqlite3))
    module.__dict__.update(sqlite_version_info=version, sqlite_version=".".join(map(str, version)))
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", module=module,
                                      connect_args={"check_same_thread": False})
    install_sqlite_pragmas(engine)
    sqlalchemy.event.listen(engine, "connect", lambda conn, _record: conn.set_trace_callback(statements.append))
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _sweep_in_batches(manager: SessionManager, clock: ManualClock, batch_size: int) -> None:
    overdue = [manager.create(user_id=f"u{i}", metadata={"i": i, "name": "é"}, ttl=timedelta(minutes=1 + i % 3),
                              performer_id=f"u{i}").id for i in range(230)]
    for sid in overdue[::2]:
        manager.start(sid, performer_id=manager.store.get(sid).user_id)  # type: ignore[union-attr]
    later = manager.create(performer_id="w", ttl=timedelta(hours=2)).id
    closed = manager.create(performer_id="w").id
    manager.fail(closed, reason="gone", performer_id="w")
    expired: list[object] = []
    manager.subscribe(lambda event: expired.append(event.session_id))
    clock.advance(timedelta(minutes=5))

    assert manager.expire_sessions(batch_size=batch_size) == len(overdue)
    assert manager.expire_sessions(batch_size=batch_size) == 0

    assert sorted(map(str, expired)) == sorted(map(str, overdue))
    for sid in overdue[:10] + overdue[-10:]:
        session = manager.store.get(sid)
        assert session is not None
        assert session.status is SessionStatus.EXPIRED
        assert session.closed_by == "system"
        assert replay(manager.history(sid)) == session
    assert manager.get(later).status is SessionStatus.PENDING
    assert manager.get(closed).status is SessionStatus.FAILED
    assert manager.next_deadline() == manager.get(later).expires_at
    assert manager.verify() == []
