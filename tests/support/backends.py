"""The store backends the contract suite runs on: in memory, SQLite on a file, PostgreSQL and Redis — each also
behind the asyncio facade (``ASYNC_BACKENDS``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.ports import EventStore
from sessionflow.bootstrap import create_redis_store, create_store

BACKENDS = ["memory", "sqlite", "postgres", "redis"]
#: The asyncio facade over each store: an ``AsyncSessionManager`` behind a synchronous bridge
#: (``tests/support/async_bridge.py``).
ASYNC_BACKENDS = [f"{backend}-async" for backend in BACKENDS]
SQL_BACKENDS = ["sqlite", "postgres"]
#: The store options the Redis store takes (the SQL ones, e.g. ``sqlite_synchronous``, do not apply to it).
_REDIS_OPTIONS = frozenset({"cache_size", "redis_prefix", "redis_retries", "redis_socket_timeout"})


#: The tables a test may write, emptied between tests (children before parents, though none has a foreign key).
_TABLES = ("idempotency_keys", "session_events", "sessionflow_consumers", "sessions")
#: One engine per test server for :func:`reset_postgres`; it keeps no connection open between tests (some tests
#: count the server's connections).
_RESET_ENGINES: dict[str, Engine] = {}


def reset_postgres(url: str) -> None:
    """Empty the test database (schema kept) so each test starts from nothing.

    ``DELETE`` rather than ``TRUNCATE``: the tables of one test hold a few rows, and ``TRUNCATE`` (new files for
    every table and index) costs ten times as much there."""
    engine = _RESET_ENGINES.get(url)
    if engine is None:
        engine = _RESET_ENGINES[url] = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(:names)"),
            {"names": list(_TABLES)}).scalars())
        for table in (t for t in _TABLES if t in tables):
            conn.execute(text(f"DELETE FROM {table}"))


def open_store(backend: str, url: str | None, **options: Any) -> EventStore:
    """A fresh store of ``backend``; SQL stores open ``url`` (shared by every store of one test)."""
    if backend == "memory":
        return InMemoryEventStore()
    if backend in SQL_BACKENDS:
        assert url is not None
        return create_store(url, **options)
    if backend == "redis":
        assert url is not None
        return create_redis_store(url, **{k: v for k, v in options.items() if k in _REDIS_OPTIONS})
    raise ValueError(f"unknown backend {backend!r}")
