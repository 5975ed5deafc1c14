"""The store backends the contract suite runs on: in memory, SQLite on a file, PostgreSQL and Redis — each also
behind the asyncio facade (``ASYNC_BACKENDS``)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application.ports import EventStore
from sessionflow.bootstrap import SessionManager, create_redis_store, create_store

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


@contextlib.contextmanager
def postgres_database(server_url: str, prefix: str = "sf_test", template: str | None = None) -> Iterator[str]:
    """A new database of its own on the PostgreSQL server of ``server_url`` (its URL) — empty, or a copy of the
    database ``template`` —; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = make_url(server_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class SharedManagers:
    """Managers that the tests of one module share, one per SQL backend, each over a database of its own that
    ``populate`` fills once, when a test first asks for it: for tests that only read a costly data set.

    SQLite: a file in ``directory``; PostgreSQL: a database of its own on the test server (``postgres_url``, from
    the asking test's ``request``), dropped by :meth:`close`.
    """

    def __init__(self, directory: Path, populate: Callable[[SessionManager], None]) -> None:
        self._directory = directory
        self._populate = populate
        self._managers: dict[str, SessionManager] = {}
        self._stack = contextlib.ExitStack()

    def get(self, backend: str, request: pytest.FixtureRequest) -> SessionManager:
        manager = self._managers.get(backend)
        if manager is None:
            if backend == "sqlite":
                url = f"sqlite:///{self._directory / 'shared.db'}"
            elif backend == "postgres":
                url = self._stack.enter_context(postgres_database(str(request.getfixturevalue("postgres_url"))))
            else:
                raise ValueError(f"not a SQL backend: {backend!r}")
            manager = self._stack.enter_context(SessionManager.open(url))
            self._populate(manager)
            self._managers[backend] = manager
        return manager

    def close(self) -> None:
        self._managers.clear()
        self._stack.close()


def shared_data_fixtures(label: str, populate: Callable[[SessionManager], None]) -> tuple[Any, Any]:
    """The fixtures ``shared`` (a module's :class:`SharedManagers`, ``populate`` writing its data once per backend)
    and ``manager`` (the current SQL backend's shared manager) of a module whose tests only read that data:
    ``shared, manager = shared_data_fixtures("list-plans", _populate)``."""

    @pytest.fixture(scope="module")
    def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedManagers]:
        managers = SharedManagers(tmp_path_factory.mktemp(label), populate)
        yield managers
        managers.close()

    @pytest.fixture
    def manager(sql_backend: str, shared: SharedManagers, request: pytest.FixtureRequest) -> SessionManager:
        return shared.get(sql_backend, request)

    return shared, manager
