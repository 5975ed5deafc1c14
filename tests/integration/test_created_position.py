"""``sessions.created_position`` is the feed position of the session's ``created`` event on every path that writes
sessions — a create (PostgreSQL: one statement, a data-modifying CTE, whose events' ``AFTER`` row trigger sees
the projection row the same statement inserted), a batch, a create-and-start, group commit, an archive restored,
a store migrated, a rebuild — set by the database's trigger (revision 0007), not by the store's statements."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from sessionflow import SessionManager
from sessionflow.adapters.archive import restore_archive
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


def test_every_write_path_sets_the_list_order(sql_url: str, clock: ManualClock, tmp_path: Path) -> None:
    with SessionManager.open(sql_url, clock=clock) as manager:
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
