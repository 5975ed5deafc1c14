"""Revision ``0009`` (``session_events.traceparent``, ``tracestate``): a database of ``0008`` with events upgrades,
its events read back without a trace context while new ones keep theirs; down to ``0008`` and up again; and the
columns are added without a rewrite of the table (PostgreSQL: the table keeps its file; SQLite: the table's pages
are not written)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, create_engine, inspect, text

from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.migrations import alembic_config, schema_drift, upgrade
from tests.tracing.conftest import Spans


def _event_columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns("session_events")}
    finally:
        engine.dispose()


def _file_of_events(conn: Connection) -> object:
    """PostgreSQL: the file holding ``session_events`` (a table rewrite makes a new one); SQLite: nothing."""
    if conn.dialect.name != "postgresql":
        return None
    return conn.execute(text("SELECT pg_relation_filenode('session_events')")).scalar()


def test_0008_upgrades_and_downgrades(sql_url: str, spans: Spans) -> None:
    engine = create_engine(sql_url)
    try:
        with SessionManager.open(sql_url, tracing=False) as manager:  # a database at the head, with an event
            old = manager.create(user_id="u1", performer_id="u1")
        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "0008")
        assert not {"traceparent", "tracestate"} & _event_columns(sql_url)
        with engine.connect() as conn:  # what 0008 holds is still there
            assert conn.execute(text("SELECT count(*) FROM session_events")).scalar() == 1
            before = _file_of_events(conn)
        assert upgrade(engine) == "0008"  # the revision it was at
        with engine.connect() as conn:
            assert _file_of_events(conn) == before  # PostgreSQL: no rewrite (a rewrite gives a new file)
        assert {"traceparent", "tracestate"} <= _event_columns(sql_url)
        assert schema_drift(engine) == []
    finally:
        engine.dispose()
    with SessionManager.open(sql_url, tracing=spans.tracing) as manager:
        (before,) = manager.history(old.id)
        assert before.trace_context is None
        with spans.tracer.start_as_current_span("request"):
            manager.start(old.id, performer_id="u1")
        after = manager.history(old.id)[-1]
        assert after.trace_context is not None
        assert after.trace_context.trace_id == format(spans.named("request")[0].context.trace_id, "032x")


def test_the_columns_are_added_without_rewriting_the_table_on_sqlite(tmp_path: Path) -> None:
    """SQLite's ADD COLUMN edits the schema text only: the pages holding the events are the same bytes."""
    path = tmp_path / "big.db"
    url = f"sqlite:///{path}"
    with SessionManager.open(url, tracing=False) as manager:
        manager.create_many([{"user_id": f"u{i}"} for i in range(2000)], performer_id="ops")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "0008")
    finally:
        engine.dispose()
    with sqlite3.connect(path) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'session_events'").fetchone()[0]
    before = path.read_bytes()
    engine = create_engine(url)
    try:
        assert upgrade(engine) == "0008"  # the revision it was at
    finally:
        engine.dispose()
    after = path.read_bytes()
    changed = [n for n in range(min(len(before), len(after)) // page_size)
               if before[n * page_size:(n + 1) * page_size] != after[n * page_size:(n + 1) * page_size]]
    # Page 1 holds sqlite_master (the schema text) and the header; alembic_version's page changes too. The
    # events' table (its root page and its thousands of rows' pages) is not rewritten.
    assert len(after) == len(before)
    assert root - 1 not in changed
    assert len(changed) <= 3
