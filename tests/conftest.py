"""Shared fixtures: the store backends every contract test runs on, and a manual clock.

``make_manager(**options)`` builds a :class:`SessionManager` over the backend of the current parameter
(``memory``, ``sqlite`` on a temporary file — a copy of a database at the schema's head —, ``postgres`` on the
test server, ``redis`` on the test Redis server) and closes it afterwards.
Within one test, every SQL manager it makes shares one database, so a test can open a second manager
on the same data (as another process would).

The contract suite (``sessionflow.testing.contract``, collected in ``tests/contract``) and the custom-lifecycle
tests (``tests/lifecycles``) also run on the asyncio facade: ``memory-async``, ``sqlite-async``,
``postgres-async`` and ``redis-async`` build an :class:`~sessionflow.AsyncSessionManager` on an event loop of its
own and hand the test a synchronous bridge to it (``tests/support/async_bridge.py``). Elsewhere those parameters
are deselected, and so are they for a test of those suites that builds no manager through ``make_manager`` or
``sessionflow_manager_factory`` (it drives a store itself: on the asyncio variants it would only run again).
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.testing import ManualClock
from tests.support.async_bridge import async_managers
from tests.support.backends import ASYNC_BACKENDS, BACKENDS, SQL_BACKENDS, open_store, reset_postgres
from tests.support.postgres import postgres_url  # noqa: F401  (a session-scoped fixture)
from tests.support.redis import redis_url, reset_redis  # noqa: F401  (redis_url: a session-scoped fixture)

MakeManager = Callable[..., SessionManager]

_STORE_OPTIONS = frozenset({"cache_size", "sqlite_synchronous", "pool_size", "max_overflow"})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))


#: The folders whose tests run on the asyncio backends too.
ASYNC_SUITES = ("contract", "lifecycles")
#: The fixtures through which a test of those folders builds managers (on the asyncio facade for those backends).
MANAGER_FIXTURES = frozenset({"make_manager", "sessionflow_manager_factory"})


@pytest.fixture(params=BACKENDS + ASYNC_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the schema's head, built once per test process: each test of a SQLite backend
    starts from a copy of it (an empty database at the head) instead of running every migration again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "sessionflow.db"
    open_store("sqlite", f"sqlite:///{path}").close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    backend = backend.removesuffix("-async")
    if backend == "sqlite":
        database = tmp_path / "sessionflow.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), database)
        return f"sqlite:///{database}"
    if backend == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        reset_postgres(url)
        return url
    if backend == "redis":
        url = str(request.getfixturevalue("redis_url"))
        reset_redis(url)
        return url
    return None


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database of this test for SQL backends (``None`` for the in-memory one)."""
    return _database_url(backend, request, tmp_path)


@pytest.fixture
def sql_url(sql_backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database for tests that only make sense on SQL stores (SQLite file, then PostgreSQL)."""
    url = _database_url(sql_backend, request, tmp_path)
    assert url is not None
    return url


@pytest.fixture
def make_manager(backend: str, database_url: str | None) -> Iterator[MakeManager]:
    if backend in ASYNC_BACKENDS:
        yield from async_managers(database_url, _STORE_OPTIONS)
        return
    managers: list[SessionManager] = []

    def factory(**options: Any) -> SessionManager:
        store_options = {k: options.pop(k) for k in list(options) if k in _STORE_OPTIONS}
        other = options.pop("store_of", None)  # share another manager's store (needed for the memory backend)
        if other is not None:
            manager = SessionManager(other.store, owns_store=False, **options)
            managers.append(manager)
            return manager
        store = open_store(backend, database_url, **store_options)
        manager = SessionManager(store, **options)
        managers.append(manager)
        return manager

    yield factory
    for manager in managers:
        manager.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The asyncio backends run the suites of :data:`ASYNC_SUITES` only, and there only the tests that build
    managers (:data:`MANAGER_FIXTURES`); a module with ``ONLY_WHEN_SLOW = True`` (the fault runs of
    ``make faults``) runs only when slow tests are asked for (``-m slow``)."""
    expression = str(config.getoption("markexpr") or "")
    slow_asked = "slow" in expression and "not slow" not in expression
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("backend") if callspec is not None else None
        suite = item.path.parent.name
        only_slow = bool(getattr(getattr(item, "module", None), "ONLY_WHEN_SLOW", False)) and not slow_asked
        facade_only = param in ASYNC_BACKENDS and (suite not in ASYNC_SUITES
                                                   or not MANAGER_FIXTURES & set(getattr(item, "fixturenames", ())))
        (dropped if only_slow or facade_only else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (the modules, the items, their parameters) lives until the end of the run: moved out
    of the garbage collector's sight, so that its full collections stop walking it again and again (they took a
    tenth of the run's time)."""
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------- CI: PostgreSQL must run

_postgres_outcomes = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "postgres" not in report.nodeid:
        return
    if report.skipped:
        _postgres_outcomes["skipped"] += 1
    elif report.when == "call" and report.passed:
        _postgres_outcomes["passed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a PostgreSQL test that did not run is a failure, not a skip."""
    from tests.support.postgres import in_ci

    if not in_ci() or exitstatus != 0 or session.config.option.collectonly:
        return
    if _postgres_outcomes["skipped"] or (session.testscollected and not _postgres_outcomes["passed"]
                                         and not session.config.option.keyword
                                         and session.config.args_source != pytest.Config.ArgsSource.ARGS):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CI: PostgreSQL tests skipped={_postgres_outcomes['skipped']} "
                f"passed={_postgres_outcomes['passed']}: a PostgreSQL test that did not run is a failure",
                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
