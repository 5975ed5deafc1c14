"""The storage format the SQL and Redis stores share: its column order is the SQL table's, and the Redis store
reads and writes it without loading the SQL adapter or SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys

from sessionflow.adapters.sqlalchemy.tables import sessions
from sessionflow.adapters.storage_format import SESSION_COLUMNS, from_millis, to_millis


def test_the_session_columns_are_the_tables_in_its_order() -> None:
    assert tuple(column.name for column in sessions.c) == (*SESSION_COLUMNS, "created_position")


def test_times_are_epoch_milliseconds() -> None:
    moment = from_millis(1_700_000_000_123)
    assert moment.isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert to_millis(moment) == 1_700_000_000_123


def test_the_redis_store_loads_no_sql() -> None:
    code = ("import sys, sessionflow.adapters.redis, sessionflow.adapters.redis.watcher; "
            "print(sorted(n for n in sys.modules if n.split('.')[0] == 'sqlalchemy' "
            "or n.startswith('sessionflow.adapters.sqlalchemy')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"
