"""The check "is any session due?" (made before every list) reads the ``due_at`` index under any plan: also the
generic plan PostgreSQL uses for a statement psycopg has prepared (after five runs), where a shape such as
``EXISTS (SELECT ... WHERE due_at <= $1)`` can fall back to reading the whole table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from sessionflow import SessionManager
from sessionflow.adapters.sqlalchemy.statements import due_statement
from tests.support.backends import reset_postgres

pytestmark = pytest.mark.postgres


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", ()):
        found += _nodes(child)
    return found


def test_the_due_check_uses_the_deadline_index_under_a_generic_plan(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    SessionManager.open(postgres_url).close()
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            conn.execute(text(
                "INSERT INTO sessions (id, status, version, total_files, processed_files, failed_files, "
                "ttl_seconds, created_at, updated_at, due_at, data) SELECT gen_random_uuid(), 'pending', 1, 0, 0, "
                "0, 60, g, g, 4000000000000 + g, '{}'::jsonb FROM generate_series(1, 20000) AS g"))
            conn.execute(text("ANALYZE sessions"))
            compiled = due_statement(datetime(2030, 1, 1, tzinfo=UTC)).compile(
                engine, compile_kwargs={"literal_binds": False})
            query = str(compiled).replace("%(due_at_1)s", "$1").replace("%(param_1)s", "$2")
            conn.execute(text("SET plan_cache_mode = force_generic_plan"))
            conn.exec_driver_sql(f"PREPARE due_check(bigint, integer) AS {query}")
            raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) EXECUTE due_check(0, 1)").scalar_one()
            conn.rollback()
    finally:
        engine.dispose()
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    kinds = {node["Node Type"] for node in _nodes(plan)}
    assert "Seq Scan" not in kinds, kinds
    assert {node.get("Index Name") for node in _nodes(plan)} >= {"ix_sessions_due_at"}, kinds
