"""The SQL store's sweep (see ``_expire_due_fast``), in batches of every size — and on SQLite both ways it
writes (one statement per batch from SQLite 3.38; before it, a transaction of per-session statements) —
expires each overdue session exactly once, writes the rows and events sessionflow's fold expects, and leaves
sessions that are not due alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore, SqliteEventStore
from sessionflow.testing import ManualClock

_BATCH_SIZES = [1, 7, 100, 200, 229, 230, 231, 1000]


@pytest.mark.parametrize("batch_size", _BATCH_SIZES)
def test_every_batch_size_expires_each_overdue_session_once(sql_url: str, clock: ManualClock,
                                                            batch_size: int) -> None:
    _sweep_in_batches(sql_url, clock, batch_size, modern=True)


@pytest.mark.parametrize("batch_size", _BATCH_SIZES)
def test_sqlite_per_session_writes_expire_each_overdue_session_once(tmp_path: Path, clock: ManualClock,
                                                                   batch_size: int) -> None:
    """SQLite before 3.38 (no ``RETURNING``) writes a batch as a transaction of per-session statements."""
    _sweep_in_batches(f"sqlite:///{tmp_path / 'sweep.db'}", clock, batch_size, modern=False)


def _sweep_in_batches(sql_url: str, clock: ManualClock, batch_size: int, *, modern: bool) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager:
        store = manager.store
        assert isinstance(store, SqlAlchemyEventStore)
        if isinstance(store, SqliteEventStore):
            store._modern = store._modern and modern
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
