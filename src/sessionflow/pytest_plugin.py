"""The pytest plugin that installing sessionflow registers (``pytest11`` entry point; disable it with
``-p no:sessionflow``).

Fixtures:

``sessionflow_clock``
    A :class:`~sessionflow.testing.ManualClock` at 2030-01-01 00:00 UTC. It moves only when told to.
``sessionflow_time``
    A :class:`~sessionflow.testing.TimeTravel` on that clock: ``sessionflow_time.advance(timedelta(minutes=5))``
    moves the clock and runs every timeout that falls due meanwhile — synchronously, in deadline order, each
    session expired at its own deadline — without sleeping and without threads.
``sessionflow_manager``
    A :class:`~sessionflow.SessionManager` on an in-memory store and that clock, attached to
    ``sessionflow_time`` and closed after the test.
``sessionflow_sqlite_manager``
    The same on an SQLite file in the test's ``tmp_path``.

For the store contract suite (:mod:`sessionflow.testing.contract`, collected by
``from sessionflow.testing.contract import *`` in a test module):

``sessionflow_store_factory``
    The store the suite runs on: a callable that opens a new, empty store of the backend under test. A backend
    author overrides it; the default fails the test, saying so.
``sessionflow_store_lacks``
    The optional capabilities (names of :data:`sessionflow.testing.contract.CAPABILITIES`) the backend
    declares it lacks: their tests are skipped, with the reason. Default: none.
``sessionflow_manager_factory``
    ``make(**options)``: a :class:`~sessionflow.SessionManager` over a new store of
    ``sessionflow_store_factory``, built with the manager's arguments; each is closed after the test.

It also collects ``*.scenario.yaml`` / ``*.scenario.yml`` / ``*.scenario.json`` files as tests (see
:mod:`sessionflow.scenarios`). A failed step, or a scenario file that cannot be used (a ``ScenarioError``
naming the file, the key and the line), is a short failure without a traceback. Loading it is cheap (pytest
loads it in every project that installs sessionflow): managers, stores and the scenario runner are imported
when first used, and the contract suite only when a test module imports it (its assertions are rewritten by
pytest, as a test module's are).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sessionflow.testing import AsyncTimeTravel, ManualClock, TimeTravel
from sessionflow.testing._managers import ManagerFactory, Managers, StoreFactory

if TYPE_CHECKING:
    from sessionflow.application.manager import ManagerCore

#: The contract suite's modules: pytest rewrites their assertions (they are test code imported by test modules).
pytest.register_assert_rewrite("sessionflow.testing.contract")

__all__ = ["ScenarioFailed", "ScenarioFile", "ScenarioItem", "pytest_collect_file", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the contract tests that need an optional store capability."""
    config.addinivalue_line("markers", "sessionflow_requires(capability): a contract test that needs an optional "
                                       "store capability (skipped when sessionflow_store_lacks names it)")


@pytest.fixture
def sessionflow_clock() -> ManualClock:
    """A :class:`ManualClock` at 2030-01-01 00:00 UTC."""
    return ManualClock()


@pytest.fixture
def sessionflow_time(sessionflow_clock: ManualClock) -> Iterator[TimeTravel]:
    """A :class:`TimeTravel` on ``sessionflow_clock``; ``.advance(delta)`` runs the timeouts due."""
    with TimeTravel(sessionflow_clock) as travel:
        yield travel


@pytest.fixture
def sessionflow_manager(sessionflow_time: TimeTravel) -> ManagerCore:
    """An in-memory :class:`~sessionflow.SessionManager` on ``sessionflow_clock``."""
    return sessionflow_time.manager()


class ScenarioFile(pytest.File):
    """A ``*.scenario.yaml`` file: one test that plays the scenario (see :mod:`sessionflow.scenarios`)."""

    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.name)


class ScenarioItem(pytest.Item):
    """One scenario file played as a test: a failed step, or a file that cannot be used, is a short failure
    (the step, or the file, key and line, and what is wrong), without a traceback."""

    def runtest(self) -> None:
        from sessionflow.scenarios import run_scenario

        report = run_scenario(self.path)
        if not report.ok:
            lines = [f"  step {s.index}: {s.step}\n    {self.path.name}:{s.line}: {s.message}" if s.line else
                     f"  step {s.index}: {s.step}\n    {s.message}" for s in report.failures]
            raise ScenarioFailed(report.summary() + "\n" + "\n".join(lines))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        error = excinfo.value
        if isinstance(error, ScenarioFailed):
            return str(error)
        scenarios = sys.modules.get("sessionflow.scenarios")  # loaded by runtest if the error can be one of its
        if scenarios is not None and isinstance(error, scenarios.ScenarioError):
            return f"{type(error).__name__}: {error.message}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"


class ScenarioFailed(AssertionError):
    """A scenario step or expectation failed."""


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> ScenarioFile | None:
    """Collect ``*.scenario.yaml`` / ``*.scenario.yml`` / ``*.scenario.json`` files as tests."""
    if file_path.name.endswith((".scenario.yaml", ".scenario.yml", ".scenario.json")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def sessionflow_sqlite_manager(sessionflow_time: TimeTravel, tmp_path: Path) -> ManagerCore:
    """A :class:`~sessionflow.SessionManager` on an SQLite file in ``tmp_path`` and ``sessionflow_clock``."""
    return sessionflow_time.sqlite_manager(tmp_path / "sessionflow.db")


@pytest.fixture
def sessionflow_async_time(sessionflow_clock: ManualClock) -> AsyncTimeTravel:
    """An :class:`~sessionflow.testing.AsyncTimeTravel` on ``sessionflow_clock``, for asyncio tests: build each
    :class:`~sessionflow.AsyncSessionManager` with ``clock=sessionflow_clock``, ``attach`` it, and
    ``await sessionflow_async_time.advance(delta)`` runs every timeout due on the way, in deadline order."""
    return AsyncTimeTravel(sessionflow_clock)


# ------------------------------------------------------------------------------------------ the contract suite


@pytest.fixture
def sessionflow_store_factory() -> StoreFactory:
    """The store the contract suite runs on: override it with a fixture returning a callable that opens a new,
    empty store of your backend (the suite calls it once for each manager it builds; the manager closes it)."""
    pytest.fail("the sessionflow contract suite needs a store: define a fixture `sessionflow_store_factory` "
                "returning a callable that opens a new, empty store of your backend (docs/testing.md, "
                "\"Proving a backend with the contract suite\")", pytrace=False)


@pytest.fixture
def sessionflow_store_lacks() -> frozenset[str]:
    """The optional capabilities (names of ``sessionflow.testing.contract.CAPABILITIES``) the backend under test
    declares it lacks: the contract tests that need one are skipped, naming it. Default: none."""
    return frozenset()


@pytest.fixture
def sessionflow_manager_factory(sessionflow_store_factory: StoreFactory) -> Iterator[ManagerFactory]:
    """``make(**options)``: a :class:`~sessionflow.SessionManager` over a new store of
    ``sessionflow_store_factory``, built with ``options`` (the manager's arguments); all closed after the test."""
    managers = Managers(sessionflow_store_factory)
    yield managers
    managers.close()
