"""The plans of ``list``: every filter combination reads an index in list order, with no sort and no full scan.

20,000 sessions (1,000 users, 50 workspaces, four statuses, two lifecycles, 30 days of creation times) are
written straight into the projection; each ``list`` call's own SQL and parameters are captured as the store
runs them and explained on the same database:

* SQLite (``EXPLAIN QUERY PLAN``, no statistics, as an application database has): every ``sessions`` step
  is a ``SEARCH`` or ``SCAN`` *using an index*, and there is no ``USE TEMP B-TREE FOR ORDER BY``. The
  statement names its index (``INDEXED BY``), so this is the plan at any size.
* PostgreSQL (``EXPLAIN (FORMAT JSON)``, after ``ANALYZE``): with ``enable_sort`` off, the plan has an index
  scan, no sequential scan and no ``Sort`` node — an index serves the combination in list order. (With sorts
  allowed, PostgreSQL may rightly prefer a bitmap scan and a sort of the few rows of one user on a table this
  small; which plan it picks at 1,000,000 sessions, against the best one by hand, is what
  ``benchmarks/bench_list.py`` measures.)
* PostgreSQL, every session of one lifecycle (the common case): a status and the lifecycle together read the
  status's index, with the planner's own choice. (With ``lifecycle = ...`` the lifecycle's perfectly
  correlated statistics made its index look cheaper and the scan read every other status's rows.)
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.tables import sessions, to_millis
from tests.support.backends import shared_data_fixtures

SIZE = 20_000
NOW = datetime.now(UTC).replace(microsecond=0)
RANGE = {"created_after": NOW - timedelta(days=20), "created_before": NOW - timedelta(days=10)}

COMBINATIONS: list[dict[str, Any]] = [
    {},
    {"status": "in_progress"},
    {"status": ["pending", "failed"]},
    {"user_id": "user-0007"},
    {"user_id": "user-0007", "status": "pending"},
    {"user_id": "user-0007", "status": ["pending", "in_progress"]},
    {"workspace_id": "ws-03"},
    {"workspace_id": "ws-03", "status": "completed"},
    {"workspace_id": "ws-03", "status": ["completed", "failed"]},
    {"user_id": "user-0007", "workspace_id": "ws-03"},
    {"lifecycle": "session"},
    {"lifecycle": "session", "status": "failed"},
    {"lifecycle": "session", "workspace_id": "ws-03"},
    {"lifecycle": "session", "user_id": "user-0007", "status": "pending"},
    {"module_name": "module-1"},
    {"module_name": "module-1", "user_id": "user-0007"},
    RANGE,
    {**RANGE, "status": "in_progress"},
    {**RANGE, "status": ["pending", "failed"]},
    {**RANGE, "user_id": "user-0007"},
    {**RANGE, "user_id": "user-0007", "status": "completed"},
    {**RANGE, "workspace_id": "ws-03"},
    {**RANGE, "lifecycle": "session"},
    {"created_after": NOW - timedelta(days=3)},
    {"created_before": NOW - timedelta(days=27), "status": "pending"},
]


def _rows(jobs_share: float = 0.1) -> list[dict[str, Any]]:
    """The sessions, a ``jobs_share`` of them of the ``jobs`` lifecycle, the others of ``session``, their list
    order (``created_position``, written here as the ``created`` events' trigger would) that of creation."""
    rows = sorted(_unordered(jobs_share), key=lambda row: row["created_at"])
    for position, row in enumerate(rows, 1):
        row["created_position"] = position
    return rows


def _unordered(jobs_share: float) -> Iterator[dict[str, Any]]:
    rng = random.Random(14)
    for _ in range(SIZE):
        status = rng.choices(["pending", "in_progress", "completed", "failed"], [2, 3, 4, 1])[0]
        live = status in ("pending", "in_progress")
        created = to_millis(NOW) - rng.randrange(30 * 86_400_000)
        deadline = to_millis(NOW + timedelta(days=3650)) if live else None
        yield {"id": uuid.uuid4(), "status": status, "version": 1, "user_id": f"user-{rng.randrange(1000):04d}",
               "workspace_id": f"ws-{rng.randrange(50):02d}", "module_name": f"module-{rng.randrange(10)}",
               "total_files": 0, "processed_files": 0, "failed_files": 0, "current_file": None,
               "ttl_seconds": 3600.0, "created_at": created, "updated_at": created, "expires_at": deadline,
               "max_expires_at": None, "closed_at": None if live else created, "closed_by": None,
               "failure_reason": "r" if status == "failed" else None, "deleted_at": None, "due_at": deadline,
               "data": {"file_paths": [], "file_results": {}, "notes": [], "metadata": {}},
               "lifecycle": "jobs" if rng.random() < jobs_share else "session", "lifecycle_version": 1}


def _populate(manager: SessionManager) -> None:
    engine = manager.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(insert(sessions), _rows())
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE sessions"))


#: The data written once per backend for the module (its tests only read it), and each test's manager over it.
shared, manager = shared_data_fixtures("list-plans", _populate)


def _captured(manager: SessionManager, **filters: Any) -> list[tuple[str, Any]]:
    """The list queries ``manager.list(**filters)`` runs, with their parameters (driver-level)."""
    engine = manager.store.engine  # type: ignore[attr-defined]
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        # (the due check before a list reads the due_at index: not a list query)
        if "FROM sessions" in statement and "ORDER BY" in statement and "ORDER BY sessions.due_at" not in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        manager.list(**filters)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(seen) == 1
    return seen


def _variants(manager: SessionManager, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """The combination as a first page, with an offset, and with the cursor of its first page: oldest first
    and newest first."""
    variants = []
    for newest_first in (False, True):
        given = {**filters, "newest_first": newest_first}
        cursor = manager.page(limit=5, **given).next_cursor
        variants += [{**given, "limit": 100}, {**given, "limit": 10, "offset": 20},
                     *([{**given, "cursor": cursor, "limit": 50}] if cursor is not None else [])]
    return variants


def _sqlite_plan(manager: SessionManager, statement: str, parameters: Any) -> list[str]:
    engine = manager.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return [str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]


def _postgres_nodes(manager: SessionManager, statement: str, parameters: Any, *,
                    no_sort: bool = True) -> list[dict[str, Any]]:
    """The nodes of PostgreSQL's plan of ``statement`` (``no_sort``: with sorting made the last resort)."""
    engine = manager.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        if no_sort:
            conn.exec_driver_sql("SET enable_sort = off")
        document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
        conn.rollback()
    plan = document if isinstance(document, list) else json.loads(document)
    nodes: list[dict[str, Any]] = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def test_every_filter_combination_reads_an_index_in_list_order(manager: SessionManager) -> None:
    dialect = manager.store.engine.dialect.name  # type: ignore[attr-defined]
    for filters in COMBINATIONS:
        for arguments in _variants(manager, filters):
            expected = manager.list(**arguments)
            created = [s.created_at for s in expected]
            assert created == sorted(created, reverse=arguments["newest_first"]), arguments
            ((statement, parameters),) = _captured(manager, **arguments)
            if dialect == "sqlite":
                steps = _sqlite_plan(manager, statement, parameters)
                reads = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
                assert reads, (arguments, steps)
                assert all("USING INDEX" in s or "USING COVERING INDEX" in s for s in reads), (arguments, steps)
                assert not any("TEMP B-TREE" in s for s in steps), (arguments, steps)
            else:
                nodes = _postgres_nodes(manager, statement, parameters)
                kinds = [n["Node Type"] for n in nodes]
                assert any(k in ("Index Scan", "Index Only Scan") for k in kinds), (arguments, kinds)
                assert "Sort" not in kinds, (arguments, kinds)
                assert "Seq Scan" not in kinds, (arguments, kinds)
                assert "Bitmap Heap Scan" not in kinds, (arguments, kinds)


def test_several_statuses_are_merged_in_order(manager: SessionManager) -> None:
    """One ordered scan per status, merged in order (SQLite ``MERGE (UNION ALL)``, PostgreSQL ``Merge
    Append``), each stopping at the limit — with the planner's own choice. (On PostgreSQL a part as small as
    one user's sessions of a status may rightly be a bitmap scan and a sort of its few rows.)"""
    for filters in ({"status": ["pending", "failed"]}, {"status": ["completed", "failed"], "user_id": "user-0007"},
                    {"status": ["pending", "failed"], "newest_first": True},
                    {"status": ["completed", "failed"], "user_id": "user-0007", "newest_first": True}):
        listed = manager.list(**filters)
        created = [s.created_at for s in listed]
        assert created == sorted(created, reverse=bool(filters.get("newest_first"))), filters
        ((statement, parameters),) = _captured(manager, **filters)
        if manager.store.engine.dialect.name == "sqlite":  # type: ignore[attr-defined]
            steps = _sqlite_plan(manager, statement, parameters)
            assert "MERGE (UNION ALL)" in steps, steps
            assert not any("TEMP B-TREE" in s for s in steps), steps
        else:
            engine = manager.store.engine  # type: ignore[attr-defined]
            with engine.connect() as conn:
                document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
            plan = json.dumps(document)
            assert '"Merge Append"' in plan, plan
            if "user_id" not in filters:
                assert '"Sort"' not in plan, plan


@pytest.mark.parametrize("sql_backend", ["sqlite"], indirect=True)  # PostgreSQL chooses from its statistics
def test_the_driving_index_is_the_most_selective_filter_on_sqlite(manager: SessionManager) -> None:
    expected = {
        "ix_sessions_user_id_status_created_position": {"user_id": "user-0007", "status": "pending",
                                                        "workspace_id": "ws-03"},
        "ix_sessions_user_id_created_position": {"user_id": "user-0007", "workspace_id": "ws-03", **RANGE},
        "ix_sessions_workspace_id_created_position": {"workspace_id": "ws-03", "status": "failed",
                                                      "lifecycle": "session"},
        "ix_sessions_status_created_position": {"status": "failed", "lifecycle": "session", **RANGE},
        "ix_sessions_lifecycle_created_position": {"lifecycle": "jobs", "module_name": "module-1"},
        "ix_sessions_created_position": {"module_name": "module-1", **RANGE},
    }
    for index, filters in expected.items():
        for newest_first in (False, True):
            ((statement, parameters),) = _captured(manager, **filters, newest_first=newest_first)
            steps = _sqlite_plan(manager, statement, parameters)
            assert all(index in s for s in steps if s.startswith(("SEARCH", "SCAN"))), (filters, steps)


@pytest.mark.parametrize("sql_backend", ["postgres"], indirect=True)
def test_one_shared_lifecycle_never_drives_a_filtered_scan_on_postgres(sql_url: str) -> None:
    """Every session of the ``session`` lifecycle, statistics analysed: a list by status (or user, workspace)
    and lifecycle reads the index of the other filter, never ``(lifecycle, created_position)``."""
    with SessionManager.open(sql_url) as manager:
        engine = manager.store.engine  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(insert(sessions), _rows(jobs_share=0.0))
            conn.execute(text("ANALYZE sessions"))
        lifecycle_index = "ix_sessions_lifecycle_created_position"
        for filters in ({"status": "in_progress"}, {"status": "completed"}, {"status": "pending"},
                        {"status": "failed"}, {"status": ["pending", "in_progress"]}, {"workspace_id": "ws-03"},
                        {"user_id": "user-0007"}, {"status": "completed", **RANGE}):
            arguments = {**filters, "lifecycle": "session"}
            sessions_found = manager.list(**arguments)
            assert sessions_found, arguments
            assert all(s.lifecycle == "session" for s in sessions_found), arguments
            ((statement, parameters),) = _captured(manager, **arguments)
            with engine.connect() as conn:
                document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
            plan = json.dumps(document)
            assert lifecycle_index not in plan, (arguments, plan)
            if "user_id" not in filters:
                driving = "workspace_id" if "workspace_id" in filters else "status"
                # the filter's own index, or the list order's alone (perfectly correlated with the table's order,
                # as sessions are appended in creation order: the planner may rightly read it and filter)
                assert (f"ix_sessions_{driving}_created_position" in plan
                        or '"ix_sessions_created_position"' in plan), (arguments, plan)
        # The lifecycle alone still reads an index in list order: its own, or (every session being of it) the
        # list order's alone, which reads the same rows in the same order.
        ((statement, parameters),) = _captured(manager, lifecycle="session")
        with engine.connect() as conn:
            document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar()
        plan = json.dumps(document)
        assert lifecycle_index in plan or '"ix_sessions_created_position"' in plan, plan
        assert '"Sort"' not in plan, plan
