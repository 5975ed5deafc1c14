"""The plans of the overview's reads, on SQLite and PostgreSQL: ``deadlines_within`` reads a range of the
``due_at`` index in its order (no sort), ``count_by_status`` reads the index of its most selective filter (no
whole-table scan for a user's or a workspace's counts), and the feed by event name walks the feed's position
index in order (no sort).

The sessions are those of ``test_list_plans.py`` (20,000, written straight into the projection), with deadlines
spread over 30 days, written once per backend for the module (its tests only read them); each call's own SQL is
captured as the store runs it and explained on the same database (SQLite: ``EXPLAIN QUERY PLAN`` without
statistics; PostgreSQL: ``EXPLAIN (FORMAT JSON)`` after ``ANALYZE``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.tables import sessions, to_millis
from tests.integration.test_list_plans import NOW, _postgres_nodes, _rows
from tests.integration.test_list_plans import _sqlite_plan as _sqlite_steps
from tests.support.backends import shared_data_fixtures


def _populate(manager: SessionManager) -> None:
    engine = manager.store.engine  # type: ignore[attr-defined]
    rows = _rows()
    rng = random.Random(32)
    for row in rows:
        if row["due_at"] is not None:
            row["due_at"] = row["expires_at"] = to_millis(NOW + timedelta(minutes=rng.randrange(1, 43_200)))
    with engine.begin() as conn:
        conn.execute(insert(sessions), rows)
    for n in range(300):
        made = manager.create(performer_id="p", user_id=f"user-{n % 7}")
        if n % 10 == 0:
            manager.fail(made.id, reason="r", performer_id="p")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE sessions"))
            conn.execute(text("ANALYZE session_events"))


#: The data written once per backend for the module (its tests only read it), and each test's manager over it.
shared, manager = shared_data_fixtures("overview-plans", _populate)


def _captured(manager: SessionManager, marker: str, call: Any) -> tuple[str, Any]:
    """The one statement containing ``marker`` that ``call()`` runs, with its parameters."""
    engine = manager.store.engine  # type: ignore[attr-defined]
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if marker in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 1, seen
    return seen[0]


def _dialect(manager: SessionManager) -> str:
    return str(manager.store.engine.dialect.name)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("days", "filters"), [(2, {}), (31, {"user_id": "user-0007"}), (2, {"limit": 5})])
def test_deadlines_within_read_the_deadline_index_in_order(manager: SessionManager, days: int,
                                                           filters: dict[str, Any]) -> None:
    found = manager.deadlines_within(timedelta(days=days), **filters)
    assert found, filters
    deadlines = [s.expires_at for s in found]
    assert deadlines == sorted(deadlines)  # type: ignore[type-var]
    statement, parameters = _captured(manager, "ORDER BY sessions.due_at",
                                      lambda: manager.deadlines_within(timedelta(days=days), **filters))
    if _dialect(manager) == "sqlite":
        steps = _sqlite_steps(manager, statement, parameters)
        assert any("ix_sessions_due_at" in s for s in steps), steps
        assert not any("TEMP B-TREE" in s for s in steps), steps
    else:
        nodes = _postgres_nodes(manager, statement, parameters, no_sort=True)
        kinds = [n["Node Type"] for n in nodes]
        assert "Sort" not in kinds, kinds
        assert "Seq Scan" not in kinds, kinds
        assert "ix_sessions_due_at" in {n.get("Index Name") for n in nodes}, nodes


@pytest.mark.parametrize(("filters", "index"), [
    ({"user_id": "user-0007"}, "ix_sessions_user_id_created_position"),
    ({"user_id": "user-0007", "status": ["pending", "failed"]}, "ix_sessions_user_id_status_created_position"),
    ({"workspace_id": "ws-03"}, "ix_sessions_workspace_id_created_position"),
    ({"status": "failed"}, "ix_sessions_status_created_position"),
])
def test_counts_read_the_index_of_their_filter(manager: SessionManager, filters: dict[str, Any],
                                               index: str) -> None:
    counts = manager.count_by_status(**filters)
    listed: dict[str, int] = {}
    for page in _pages(manager, filters):
        for session in page:
            listed[session.status] = listed.get(session.status, 0) + 1
    assert counts == dict(sorted(listed.items()))
    statement, parameters = _captured(manager, "GROUP BY", lambda: manager.count_by_status(**filters))
    if _dialect(manager) == "sqlite":
        steps = _sqlite_steps(manager, statement, parameters)
        reads = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
        assert reads, steps
        assert all(index in s for s in reads), steps
    elif "status" not in filters:  # a status's share of the table may rightly be read whole on PostgreSQL
        kinds = [n["Node Type"] for n in _postgres_nodes(manager, statement, parameters, no_sort=False)]
        assert "Seq Scan" not in kinds, kinds


def _pages(manager: SessionManager, filters: dict[str, Any]) -> Iterator[list[Any]]:
    cursor = None
    while True:
        page = manager.page(cursor=cursor, limit=1000, **filters)
        yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@pytest.mark.parametrize("names", ["failed", ["created", "failed"]])
def test_the_feed_by_event_name_walks_the_position_index(manager: SessionManager, names: Any) -> None:
    found = manager.events(event=names, limit=20)
    assert found
    assert all(str(e.event) in ([names] if isinstance(names, str) else names) for e in found)
    statement, parameters = _captured(manager, "FROM session_events",
                                      lambda: manager.events(event=names, limit=20))
    if _dialect(manager) == "sqlite":
        steps = _sqlite_steps(manager, statement, parameters)
        assert any("ix_session_events_position" in s for s in steps), steps
        assert not any("TEMP B-TREE" in s for s in steps), steps
    else:
        nodes = _postgres_nodes(manager, statement, parameters, no_sort=True)
        kinds = [n["Node Type"] for n in nodes]
        assert "Sort" not in kinds, kinds
        assert "ix_session_events_position" in {n.get("Index Name") for n in nodes}, nodes
