"""The SQL store on SQLite (a file) and PostgreSQL: schema, durability, concurrency, safety, rebuild."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy.exc
from sqlalchemy import create_engine, text

from sessionflow import (
    ConcurrencyConflict,
    InvalidInput,
    SessionflowError,
    SessionManager,
    SessionStatus,
    StoreError,
    replay,
)
from sessionflow.adapters.sqlalchemy import rows as store_rows
from sessionflow.adapters.sqlalchemy.migrations import current_revision, head_revision, schema_drift
from sessionflow.adapters.sqlalchemy.tables import session_events, sessions
from sessionflow.application.ports import Change
from sessionflow.bootstrap import create_engine as sf_create_engine
from sessionflow.bootstrap import create_store
from sessionflow.errors import UnknownState
from sessionflow.testing import ManualClock
from tests.integration import workers


def _populated(manager: SessionManager) -> list[Any]:
    ids = []
    s = manager.create(user_id="u1", workspace_id="ws", module_name="m", file_paths=["a.py", "b.py", "c.py"],
                       metadata={"k": [1, {"x": "y"}], "n": None}, ttl=timedelta(minutes=30), performer_id="u1")
    manager.start(s.id, performer_id="u1")
    manager.record_file(s.id, "a.py", performer_id="u1")
    manager.record_file(s.id, "b.py", error="boom", performer_id="u1")
    manager.add_note(s.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="u1")
    manager.update(s.id, current_file="c.py", metadata={"phase": 2}, performer_id="u1")
    manager.touch(s.id, performer_id="u1")
    ids.append(s.id)
    f = manager.create(user_id="u2", performer_id="u2")
    manager.fail(f.id, reason="no input", performer_id="u2")
    ids.append(f.id)
    d = manager.create(performer_id="ops")
    manager.delete(d.id, performer_id="ops")
    ids.append(d.id)
    return ids


def test_schema_has_no_drift_from_the_migrations(sql_url: str) -> None:
    engine = sf_create_engine(sql_url)
    try:
        store = create_store(sql_url)
        store.close()
        assert schema_drift(engine) == []
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_open_twice_does_not_migrate_again_and_migrate_false_skips(sql_url: str) -> None:
    with SessionManager.open(sql_url) as first:
        sid = first.create(performer_id="p").id
    with SessionManager.open(sql_url, migrate=False) as second:
        assert second.get(sid).version == 1


def test_everything_persists_across_managers(sql_url: str) -> None:
    clock = ManualClock()
    with SessionManager.open(sql_url, clock=clock) as manager:
        ids = _populated(manager)
        before = {sid: (manager.store.get(sid), manager.history(sid)) for sid in ids}
    with SessionManager.open(sql_url, clock=clock, cache_size=0) as reopened:
        for sid in ids:
            projected, history = before[sid]
            assert reopened.store.get(sid) == projected
            assert reopened.history(sid) == history
            assert replay(history) == projected
        live = reopened.get(ids[0])
        assert [n.memory_id for n in live.notes] == ["m-1"]
        assert live.metadata == {"phase": 2}
        assert live.progress.current_file == "c.py"
        assert [(r.path, r.error) for r in live.file_results] == [("a.py", None), ("b.py", "boom")]
        assert live.expires_at == before[ids[0]][0].expires_at


def test_cache_never_serves_a_stale_session(sql_url: str) -> None:
    with SessionManager.open(sql_url) as here, SessionManager.open(sql_url) as there:
        sid = here.create(performer_id="p").id
        assert here.get(sid).version == 1  # now cached here
        there.start(sid, performer_id="p")
        there.add_note(sid, file_path="x", status="s", performer_id="p")
        seen = here.get(sid)
        assert seen.version == 3
        assert seen.status is SessionStatus.IN_PROGRESS


def test_a_write_refused_on_a_stale_cached_copy_is_decided_again_on_a_fresh_read(sql_url: str) -> None:
    """Another process moved the session on: what this one cached would refuse the write (``complete`` from
    ``pending``); the write is decided once more on a fresh read, and goes through. Batches likewise."""
    with SessionManager.open(sql_url) as here, SessionManager.open(sql_url) as there:
        single, batched = (here.create(performer_id="p").id for _ in range(2))  # cached here as pending
        there.start(single, performer_id="p")
        there.start(batched, performer_id="p")
        assert here.complete(single, performer_id="p").status is SessionStatus.COMPLETED
        [done] = here.send_many([(batched, "complete")], performer_id="p")
        assert done.status is SessionStatus.COMPLETED
        pending = here.create(performer_id="p").id
        with pytest.raises(SessionflowError, match="not allowed from 'pending'"):  # a true refusal stays one
            here.complete(pending, performer_id="p")


def test_stale_expected_version_conflicts_and_writes_nothing(sql_url: str) -> None:
    with SessionManager.open(sql_url) as manager:
        sid = manager.create(performer_id="p").id
        manager.touch(sid, performer_id="p")
        with pytest.raises(ConcurrencyConflict) as info:
            manager.update(sid, metadata={"a": 1}, expected_version=1, performer_id="p")
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        assert len(manager.history(sid)) == 2
        assert manager.get(sid).metadata == {}


def test_lost_race_is_a_conflict_chained_to_the_driver_error(sql_url: str) -> None:
    with SessionManager.open(sql_url) as manager:
        session = manager.create(performer_id="p")
        store = manager.store
        created = manager.history(session.id)[0]
        # Appending version 1 again (as a second creator would) violates the primary key / version key.
        with pytest.raises(ConcurrencyConflict) as info:
            store.append(Change(session, (created.model_copy(update={"record_id": uuid4()}),), 0))
        cause = info.value.__cause__
        assert cause is not None
        dbapi = manager.store.engine.dialect.loaded_dbapi  # type: ignore[attr-defined]
        assert isinstance(cause, dbapi.IntegrityError | sqlalchemy.exc.IntegrityError)
        assert len(manager.history(session.id)) == 1


class _Exploding:
    """A driver connection (and its cursors) raising when given a statement containing ``marker``."""

    def __init__(self, connection: Any, marker: str, owner: _Exploding | None = None) -> None:
        self._connection = connection
        self._marker = marker
        self._owner = owner or self  # the connection's proxy: where the cursors' proxies keep their state

    def execute(self, statement: str, *args: Any) -> Any:
        if self._marker in statement:
            raise RuntimeError(f"injected failure at {self._marker!r}")
        return self._connection.execute(statement, *args)

    def cursor(self) -> Any:
        return type(self)(self._connection.cursor(), self._marker, self._owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def _inject(monkeypatch: pytest.MonkeyPatch, held: Any, proxy: _Exploding) -> None:
    """Route the thread's kept connection, and the cursor it keeps, through ``proxy``."""
    monkeypatch.setattr(held, "driver_connection", proxy)
    monkeypatch.setattr(held, "_cursor", None)


@pytest.mark.parametrize("marker", ["INSERT INTO session_events", "UPDATE sessions"])
def test_failure_mid_append_leaves_nothing(sql_url: str, marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside the append's transaction: on SQLite the projection UPDATE has already run when the
    event INSERT fails (PostgreSQL runs both in one statement); either way nothing stays written."""
    with SessionManager.open(sql_url) as manager:
        sid = manager.create(performer_id="p").id
        before = manager.store.get(sid)
        held = manager.store._local.connection  # type: ignore[attr-defined]  # this thread's connection
        real = held.driver_connection
        _inject(monkeypatch, held, _Exploding(real, marker))
        with pytest.raises(RuntimeError, match="injected"):
            manager.touch(sid, performer_id="p")
        monkeypatch.undo()
        if manager.store.dialect == "sqlite":
            assert not real.in_transaction  # rolled back, not left open
        assert len(manager.history(sid)) == 1
        assert manager.store.get(sid) == before
        assert manager.touch(sid, performer_id="p").version == 2


class _LockedOnce(_Exploding):
    """A driver connection whose first statement containing ``marker`` finds the database locked."""

    failed = False

    def execute(self, statement: str, *args: Any) -> Any:
        if self._marker in statement and not self._owner.failed:
            self._owner.failed = True
            raise sqlite3.OperationalError("database is locked")
        return self._connection.execute(statement, *args)


@pytest.mark.parametrize("marker", ["BEGIN IMMEDIATE", "INSERT INTO session_events", "COMMIT"])
def test_a_driver_error_on_the_sqlite_fast_path_is_retried_once_and_applied_once(
        tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SQLite append on the thread's connection that meets a driver error (here a lock that outlived the
    busy timeout) is rolled back and handed to the careful path, which tries again: applied exactly once."""
    with SessionManager.open(f"sqlite:///{tmp_path / 'retry.db'}") as manager:
        sid = manager.create(performer_id="p").id
        held = manager.store._local.connection  # type: ignore[attr-defined]  # this thread's connection
        real = held.driver_connection
        flaky = _LockedOnce(real, marker)
        _inject(monkeypatch, held, flaky)
        assert manager.touch(sid, performer_id="p").version == 2
        assert flaky.failed
        monkeypatch.undo()
        assert not real.in_transaction
        assert [e.version for e in manager.history(sid)] == [1, 2]
        assert manager.verify() == []


def test_driver_failure_after_projection_update_rolls_back(sql_url: str) -> None:
    with SessionManager.open(sql_url) as manager:
        sid = manager.create(performer_id="p").id
        first = manager.history(sid)[0]
        session = manager.get(sid)
        bumped = session.model_copy(update={"version": 2})
        # The projection update succeeds, then the event insert hits the record-id primary key.
        duplicate = first.model_copy(update={"version": 2})
        with pytest.raises(ConcurrencyConflict):
            manager.store.append(Change(bumped, (duplicate,), 1))
        assert manager.store.get(sid) == session
        assert len(manager.history(sid)) == 1


@pytest.mark.parametrize("hostile", ["x' OR '1'='1", "'; DROP TABLE sessions; --", "%", "_", "\\", "u1' --"])
def test_filters_are_bound_parameters(sql_url: str, hostile: str) -> None:
    with SessionManager.open(sql_url) as manager:
        manager.create(user_id="u1", workspace_id="ws", module_name="m", performer_id="p")
        assert manager.list(user_id=hostile) == []
        assert manager.list(workspace_id=hostile) == []
        assert manager.list(module_name=hostile) == []
        assert len(manager.list()) == 1
        assert manager.count() == 1


def test_unknown_stored_state_is_a_clear_error(sql_url: str) -> None:
    with SessionManager.open(sql_url, cache_size=0) as manager:
        sid = manager.create(performer_id="p").id
        engine = create_engine(sql_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE sessions SET status = 'limbo'"))
        engine.dispose()
        with pytest.raises(UnknownState, match="state 'limbo', unknown to lifecycle 'session' version 1"):
            manager.get(sid)


def test_rebuild_after_a_long_random_workload_equals_the_original(sql_url: str) -> None:
    rng = random.Random(7)
    clock = ManualClock()
    with SessionManager.open(sql_url, clock=clock, cache_size=0) as manager:
        ids = []
        for _ in range(400):
            roll = rng.random()
            if roll < 0.2 or not ids:
                files = [f"f{i}" for i in range(rng.randint(0, 3))]
                ids.append(manager.create(user_id=rng.choice(["a", "b", None]), file_paths=files,
                                          ttl=timedelta(minutes=rng.randint(1, 30)), performer_id="p").id)
                continue
            sid = rng.choice(ids)
            try:
                s = manager.get(sid)
                if roll < 0.35:
                    manager.start(sid, performer_id="p")
                elif roll < 0.5 and s.file_paths:
                    pending = [p for p in s.file_paths if p not in {r.path for r in s.file_results}]
                    if pending:
                        manager.record_file(sid, pending[0], error=rng.choice([None, "bad"]), performer_id="p")
                elif roll < 0.6:
                    manager.add_note(sid, file_path="n", memory_id=str(rng.random()), status="ok", performer_id="p")
                elif roll < 0.7:
                    manager.complete(sid, performer_id="p")
                elif roll < 0.75:
                    manager.fail(sid, reason="r", performer_id="p")
                elif roll < 0.8:
                    manager.delete(sid, performer_id="p")
                elif roll < 0.9:
                    manager.update(sid, metadata={"r": rng.random()}, performer_id="p")
                else:
                    clock.advance(timedelta(minutes=rng.randint(1, 5)))
                    manager.expire_sessions()
            except SessionflowError:  # refusals are part of a random workload
                pass
        original = sorted(manager.store.projections(), key=lambda s: str(s.id))
        assert manager.verify() == []
        assert manager.rebuild() == len(original)
        rebuilt = sorted(manager.store.projections(), key=lambda s: str(s.id))
        assert rebuilt == original
        assert manager.verify() == []


def test_verify_lists_a_tampered_projection(sql_url: str) -> None:
    with SessionManager.open(sql_url, cache_size=0) as manager:
        ids = _populated(manager)
        engine = create_engine(sql_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE sessions SET status = 'completed', processed_files = 9 WHERE user_id = 'u1'"))
            conn.execute(text("DELETE FROM sessions WHERE user_id = 'u2'"))
        engine.dispose()
        differences = manager.verify()
        assert {(d.session_id, d.field) for d in differences} == {
            (ids[0], "status"), (ids[0], "progress"), (ids[1], "*")}
        manager.rebuild()
        assert manager.verify() == []
        assert manager.get(ids[0]).status is SessionStatus.IN_PROGRESS


def test_four_processes_on_the_same_sessions_lose_nothing(sql_url: str) -> None:
    with SessionManager.open(sql_url) as manager:
        ids = [str(manager.create(performer_id="setup", ttl=timedelta(days=1)).id) for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        start_at = time.time() + 3.0
        results = pool.starmap(workers.hammer, [(sql_url, ids, 150, seed, start_at) for seed in range(4)])
    acked = [entry for r in results for entry in r["acked"]]
    conflicts = sum(r["conflicts"] for r in results)
    assert acked, "no operation succeeded"
    with SessionManager.open(sql_url, cache_size=0) as manager:
        histories = {sid: manager.history(sid) for sid in ids}
        for sid, history in histories.items():
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            assert replay(history) == manager.get(sid)
        for sid, version, kind, path in acked:
            event = histories[sid][version - 1]
            assert event.event == kind
            if kind == "note_added":
                assert event.payload["file_path"] == path
        assert sum(len(h) - 1 for h in histories.values()) == len(acked)
        assert manager.verify() == []
    assert conflicts > 0, "four processes on three sessions should have collided"


def test_concurrent_first_opens_migrate_once(tmp_path: Any, sql_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        created = pool.starmap(workers.open_and_create, [(sql_url, 5)] * 3)
    with SessionManager.open(sql_url) as manager:
        assert manager.count() == 15
        assert {s.id for s in manager.list(limit=100)} == {__import__("uuid").UUID(i) for c in created for i in c}


def test_bad_urls_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        SessionManager.open("not a url")
    with pytest.raises(InvalidInput):
        SessionManager.open("nosuchdriver://x/y")


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        SessionManager.open("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_timeout=2)


def test_pool_settings_are_configurable(postgres_url: str) -> None:
    store = create_store(postgres_url, pool_size=3, max_overflow=1)
    try:
        assert store.engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        store.close()


def test_sqlite_writes_use_wal_and_the_chosen_synchronous_level(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    store = create_store(url, sqlite_synchronous="FULL")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        store.close()


def test_upgrade_from_the_first_revision_keeps_the_data(sql_url: str) -> None:
    from sessionflow.adapters.sqlalchemy.migrations import upgrade
    from sessionflow.adapters.sqlalchemy.tables import metadata

    engine = sf_create_engine(sql_url)
    try:
        with engine.begin() as conn:  # start from an empty database (the PostgreSQL one is shared)
            metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(engine, "0001")
        with engine.connect() as conn:
            assert current_revision(conn) == "0001"
        # Rows as the code of revision 0001 wrote them (no lifecycle columns yet).
        with SessionManager.in_memory() as scratch:
            sid = scratch.create(user_id="u1", performer_id="u1").id
            started = scratch.start(sid, performer_id="u1")
            events = scratch.history(sid)
        row = {k: v for k, v in store_rows.session_row(started).items()
               if k not in ("lifecycle", "lifecycle_version")}
        with engine.begin() as conn:
            conn.execute(sessions.insert(), row)
            conn.execute(session_events.insert(), [
                {k: v for k, v in store_rows.event_row(e).items() if k not in ("traceparent", "tracestate")}
                for e in events])
        upgrade(engine)
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        assert schema_drift(engine) == []
        with SessionManager.open(sql_url) as new:
            assert new.get(sid).version == 2
            assert [s.id for s in new.list(user_id="u1", status="in_progress")] == [sid]
    finally:
        engine.dispose()
