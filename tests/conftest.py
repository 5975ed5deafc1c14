"""Shared fixtures: the store backends every contract test runs on, and a manual clock.

``make_manager(**options)`` builds a :class:`SessionManager` over the backend of the current parameter
(``memory``, ``sqlite`` on a temporary file, ``postgres`` on the test server) and closes it afterwards.
Within one test, every SQL manager it makes shares one database, so a test can open a second manager
on the same data (as another process would).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sessionflow import SessionManager
from sessionflow.testing import ManualClock
from tests.support.backends import BACKENDS, SQL_BACKENDS, open_store, reset_postgres
from tests.support.postgres import postgres_url  # noqa: F401  (a session-scoped fixture)

MakeManager = Callable[..., SessionManager]

_STORE_OPTIONS = frozenset({"cache_size", "sqlite_synchronous", "pool_size", "max_overflow"})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'sessionflow.db'}"
    if backend == "postgres":
        url = str(request.getfixturevalue("postgres_url"))
        reset_postgres(url)
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
