"""``sessions.created_position`` is the feed position of the session's ``created`` event on every path that writes
sessions — a create (PostgreSQL: one statement, a data-modifying CTE that takes the created event's position
itself), a batch, a create-and-start, group commit, an archive restored, a store migrated, a rebuild. The
stores' inserts set it as they write the row (checked with revision 0007's trigger dropped); the trigger only
sets it for a writer that leaves it unset (a process of before the revision, during a rolling upgrade)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sessionflow import SessionManager
from sessionflow.adapters.archive import restore_archive
from sessionflow.adapters.sqlalchemy.layout import EVENT_COLUMNS, SESSION_COLUMNS
from sessionflow.adapters.sqlalchemy.postgres_sql import PostgresSql
from sessionflow.adapters.sqlalchemy.rows import session_row
from sessionflow.adapters.sqlalchemy.sqlite import SqliteSql
from sessionflow.entrypoints.cli.migrate import MigrationReport, copy_store
from sessionflow.testing import ManualClock

#: Sessions whose list order is not their created event's position (or that have none).
_WRONG = ("SELECT count(*) FROM sessions AS s LEFT JOIN session_events AS e ON e.session_id = s.id "
          "AND e.version = 1 WHERE s.created_position IS NULL OR e.position IS NULL "
          "OR s.created_position <> e.position")
_COUNT = "SELECT count(*) FROM sessions"


def _check(url: str, sessions: int) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text(_COUNT)).scalar() == sessions
            assert conn.execute(text(_WRONG)).scalar() == 0
    finally:
        engine.dispose()


@contextmanager
def _without_trigger(url: str) -> Iterator[None]:
    """Revision 0007's trigger out of the way (PostgreSQL: disabled, then enabled again for the next tests on
    the shared database; SQLite: dropped from this test's own file)."""
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE sessions DISABLE TRIGGER sessionflow_created_position" if postgres
                              else "DROP TRIGGER sessionflow_created_position"))
        yield
    finally:
        if postgres:
            with engine.begin() as conn:
                conn.execute(text("ALTER TABLE sessions ENABLE TRIGGER sessionflow_created_position"))
        engine.dispose()


@pytest.mark.parametrize("trigger", ["kept", "dropped"])
def test_every_write_path_sets_the_list_order(sql_url: str, clock: ManualClock, tmp_path: Path,
                                              trigger: str) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager, ExitStack() as stack:
        if trigger == "dropped":  # the stores' own statements set it: the trigger is only a net
            stack.enter_context(_without_trigger(sql_url))
        made = [manager.create(performer_id="p", user_id="u")]
        made += manager.create_many([{"user_id": "u"}, {"user_id": "v"}], performer_id="p")
        made.append(manager.create(performer_id="p", user_id="w", start=True))
        _check(sql_url, 4)
        with SessionManager.open(sql_url, clock=clock, group_commit=True) as grouped:
            threads = [threading.Thread(target=lambda: made.append(grouped.create(performer_id="p")))
                       for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        _check(sql_url, 12)
        manager.fail(made[0].id, reason="r", performer_id="p")
        clock.advance(timedelta(days=2))
        manager.create(performer_id="p")  # (the feed's newest event is never purged)
        assert manager.purge(closed_before=clock.now() - timedelta(days=1), archive=tmp_path / "archive").sessions
        _check(sql_url, 12)
        assert restore_archive(manager.store, tmp_path / "archive") == 1
        _check(sql_url, 13)
        listed = [s.id for s in manager.list(limit=1000)]
        assert manager.rebuild() == 13
        _check(sql_url, 13)
        assert [s.id for s in manager.list(limit=1000)] == listed


def test_a_migrated_store_lists_in_the_sources_order(sql_url: str, clock: ManualClock) -> None:
    with SessionManager.in_memory(clock=clock) as source, SessionManager.open(sql_url, clock=clock) as target:
        made = [source.create(performer_id="p", user_id=f"u{i % 3}").id for i in range(30)]  # one millisecond
        copy_store(source.store, target.store, MigrationReport("memory", sql_url))
        _check(sql_url, 30)
        assert [s.id for s in target.list(limit=1000)] == made
        assert [s.id for s in target.list(limit=1000, newest_first=True)] == made[::-1]


def test_a_writer_that_leaves_it_unset_gets_it_from_the_triggers(sql_url: str, clock: ManualClock) -> None:
    """A process still running the code of before revision 0007 inserts rows without ``created_position``: the
    row and its events in one statement (PostgreSQL's stores of before), or the row, then each event."""
    with SessionManager.in_memory(clock=clock) as source:
        made = [source.create(performer_id="p", user_id="u", start=True) for _ in range(2)]
        histories = [source.history(session.id) for session in made]
    with SessionManager.open(sql_url, clock=clock) as target:
        first = target.create(performer_id="p")
        engine = create_engine(sql_url)
        try:
            postgres = engine.dialect.name == "postgresql"
            sql = PostgresSql() if postgres else SqliteSql()

            def marks(columns: tuple[str, ...]) -> str:
                if not postgres:
                    return ", ".join("?" for _ in columns)
                return ", ".join("%s::jsonb" if c in ("data", "payload") else "%s" for c in columns)

            insert = f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) VALUES ({marks(SESSION_COLUMNS)})"
            # (PostgreSQL: the events' positions from their own trigger; SQLite: computed by the insert)
            insert_event = (f"INSERT INTO session_events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks(EVENT_COLUMNS)})"
                            if postgres else sql.insert_event)
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                for shape, (session, history) in zip(("statement", "statements"), zip(made, histories, strict=True),
                                                      strict=True):
                    row = sql.row_params(session.id, session_row(session), 0, create=True)
                    events = [list(sql.event_values(event)) for event in history]
                    if postgres and shape == "statement":
                        rows = ", ".join(f"({marks(EVENT_COLUMNS)})" for _ in events)
                        cursor.execute(f"WITH w AS ({insert} RETURNING 1) INSERT INTO session_events "
                                       f"({', '.join(EVENT_COLUMNS)}) SELECT * FROM (VALUES {rows}) AS v "
                                       "WHERE EXISTS (SELECT 1 FROM w)", row + [v for event in events for v in event])
                    else:
                        cursor.execute(insert, row)
                        for event in events:
                            cursor.execute(insert_event, event)
                    raw.commit()
            finally:
                raw.close()
        finally:
            engine.dispose()
        _check(sql_url, 3)
        order = [first.id, made[0].id, made[1].id]
        assert [s.id for s in target.list()] == order
        assert [s.id for s in target.list(newest_first=True)] == order[::-1]
