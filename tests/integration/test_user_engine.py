"""``SqlAlchemyEventStore(engine)`` on an engine its user configured (the documented route: plain
``sqlalchemy.create_engine``, not in autocommit mode) runs every operation of the store on SQLite and on
PostgreSQL, and leaves the engine's pooled connections as it found them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, create_engine, create_mock_engine, text

from sessionflow import SessionManager, SessionStatus, replay
from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore
from sessionflow.adapters.sqlalchemy.migrations import upgrade
from sessionflow.errors import ActiveSessionExists, BatchRejected
from sessionflow.testing import ManualClock


@pytest.fixture
def user_engine(sql_url: str) -> Iterator[Engine]:
    engine = create_engine(sql_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_every_operation_runs_on_a_user_configured_engine(user_engine: Engine, clock: ManualClock) -> None:
    store = SqlAlchemyEventStore(user_engine, owns_engine=False)
    with SessionManager(store, clock=clock, single_active_per_user=True) as manager:
        first = manager.create(user_id="u", performer_id="u")
        second = manager.create(user_id="u", performer_id="u")
        manager.start(first.id, performer_id="u")
        with pytest.raises(ActiveSessionExists) as caught:
            manager.start(second.id, performer_id="u")
        assert caught.value.active_session_id == first.id
        with pytest.raises(BatchRejected) as rejected:
            manager.send_many([(second.id, "start")], performer_id="u")
        assert isinstance(rejected.value.error, ActiveSessionExists)
        manager.send_many([(first.id, "complete"), (second.id, "start")], performer_id="u")
        assert manager.get(second.id).status is SessionStatus.IN_PROGRESS
        assert store.get(first.id) == replay(manager.history(first.id))

        # sweeps of a waker's size and of a large batch
        for count, batch_size in ((150, 1000), (25, 10)):
            overdue = [s.id for s in manager.create_many([{"ttl": timedelta(minutes=1)}] * count, performer_id="w")]
            clock.advance(timedelta(minutes=2))
            assert manager.expire_sessions(batch_size=batch_size) == count
            assert all(manager.get(sid).status is SessionStatus.EXPIRED for sid in overdue)
        assert manager.get(second.id).status is SessionStatus.IN_PROGRESS
        assert manager.verify() == []

    # The store changed nothing of the engine's connections: a transaction of its user still rolls back.
    connections = [user_engine.connect() for _ in range(3)]
    try:
        for conn in connections:
            conn.execute(text("INSERT INTO sessionflow_consumers (name, position, updated_at) "
                              "VALUES ('mine', 1, 0)"))
            conn.rollback()
            assert conn.execute(text("SELECT count(*) FROM sessionflow_consumers")).scalar_one() == 0
    finally:
        for conn in connections:
            conn.close()


def test_an_engine_of_another_dialect_is_refused() -> None:
    engine = create_mock_engine("mysql://", lambda *args, **kwargs: None)
    with pytest.raises(ValueError, match="mysql"):
        SqlAlchemyEventStore(engine)  # type: ignore[arg-type]
