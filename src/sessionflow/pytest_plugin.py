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

It also collects ``*.scenario.yaml`` / ``*.scenario.yml`` / ``*.scenario.json`` files as tests (see
:mod:`sessionflow.scenarios`). A failed step, or a scenario file that cannot be used (a ``ScenarioError``
naming the file, the key and the line), is a short failure without a traceback. Loading it is cheap (pytest
loads it in every project that installs sessionflow): managers, stores and the scenario runner are imported
when first used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sessionflow.testing import AsyncTimeTravel, ManualClock, TimeTravel

if TYPE_CHECKING:
    from sessionflow.application.manager import ManagerCore

__all__ = ["ScenarioFailed", "ScenarioFile", "ScenarioItem", "pytest_collect_file"]


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
