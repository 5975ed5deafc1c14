"""The store contract suite as a project outside this repository uses it (``sessionflow.testing.contract``): the
fixtures of the plugin, the capabilities a backend declares it lacks, the messages, and what importing costs.

The runs in a fresh directory use only the installed package and its pytest plugin: no ``conftest.py`` of this
repository is in their way.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sessionflow import InMemoryEventStore, InvalidInput
from sessionflow.testing._managers import Managers
from sessionflow.testing.contract import CAPABILITIES
from sessionflow.testing.contract._support import lacking, requires
from tests.support.pytest_runs import outcomes, run_pytest

#: A store without the purge capability: the in-memory store, ``purge_sessions`` left out.
STORE_WITHOUT_PURGE = '''
import pytest

from sessionflow import InMemoryEventStore
from sessionflow.testing.contract import *  # noqa: F403


class StoreWithoutPurge:
    def __init__(self):
        self._store = InMemoryEventStore()

    def __getattr__(self, name):
        if name == "purge_sessions":
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.fixture
def sessionflow_store_factory():
    return StoreWithoutPurge
'''

#: A store that counts one session too many: what a failing contract test says.
MISCOUNTING_STORE = '''
import pytest

from sessionflow import InMemoryEventStore
from sessionflow.testing.contract import *  # noqa: F403


class Miscounting(InMemoryEventStore):
    def count(self, status=None):
        return super().count(status) + 1


@pytest.fixture
def sessionflow_store_factory():
    return Miscounting
'''

#: The purge tests: those that need the capability, and those that do not (refusals before the store is used).
NEEDS_PURGE = 6
PURGE_TESTS = 14


def with_lacks(module: str, declared: str) -> str:
    return module + f'''

@pytest.fixture
def sessionflow_store_lacks():
    return {declared}
'''


def test_a_declared_missing_capability_skips_exactly_its_tests_and_says_why(tmp_path: Path) -> None:
    run = run_pytest(tmp_path / "declared", with_lacks(STORE_WITHOUT_PURGE, '{"purge"}'), "-k", "TestPurge")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = outcomes(run)
    assert (counts["passed"], counts["skipped"]) == (PURGE_TESTS - NEEDS_PURGE, NEEDS_PURGE)
    assert "failed" not in counts
    reasons = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(reasons) == NEEDS_PURGE
    assert all("the backend declares it lacks 'purge' (sessionflow_store_lacks)" in line for line in reasons)


def test_an_undeclared_missing_capability_fails_its_tests(tmp_path: Path) -> None:
    run = run_pytest(tmp_path / "undeclared", STORE_WITHOUT_PURGE, "-k", "TestPurge")
    assert run.returncode == 1
    counts = outcomes(run)
    assert (counts["failed"], counts["passed"], counts.get("skipped", 0)) == (NEEDS_PURGE,
                                                                              PURGE_TESTS - NEEDS_PURGE, 0)
    assert "StoreWithoutPurge cannot purge sessions" in run.stdout


def test_a_capability_the_suite_does_not_know_fails_naming_it(tmp_path: Path) -> None:
    run = run_pytest(tmp_path / "unknown", with_lacks(STORE_WITHOUT_PURGE, '{"purg"}'), "-k", "test_create_uses")
    assert run.returncode == 1
    assert outcomes(run)["error"] == 1
    assert ("sessionflow_store_lacks names unknown capabilities ['purg']: the contract suite knows "
            "['idempotency', 'purge']") in run.stdout


def test_without_a_store_the_suite_says_what_to_define(tmp_path: Path) -> None:
    run = run_pytest(tmp_path / "nothing", "from sessionflow.testing.contract import *  # noqa: F403\n",
                     "-k", "test_create_uses or test_a_store_failure")
    assert run.returncode == 1
    assert outcomes(run)["errors"] == 2
    assert run.stdout.count("the sessionflow contract suite needs a store: define a fixture "
                            "`sessionflow_store_factory`") == 2


def test_a_failing_contract_test_shows_what_differs(tmp_path: Path) -> None:
    """The plugin has pytest rewrite the suite's assertions, as it does a test module's."""
    run = run_pytest(tmp_path / "miscounting", MISCOUNTING_STORE, "-k", "TestList and test_count")
    assert run.returncode == 1
    assert outcomes(run)["failed"] == 1
    assert "assert 10 == 9" in run.stdout


def test_importing_sessionflow_loads_neither_pytest_nor_the_suite() -> None:
    code = ("import sys, sessionflow, sessionflow.testing; first = 'pytest' in sys.modules; "
            "import sessionflow.pytest_plugin; "
            "print(first, sorted(m for m in sys.modules if m.startswith('sessionflow.testing.contract')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False []"


# ---------------------------------------------------------------------------------------- the parts, in process


def test_managers_are_built_over_new_stores_and_closed_together() -> None:
    opened: list[ClosingStore] = []

    def open_store() -> ClosingStore:
        opened.append(ClosingStore())
        return opened[-1]

    managers = Managers(open_store)
    first = managers(default_ttl=timedelta(minutes=5))
    second = managers()
    assert (first.store, second.store) == (opened[0], opened[1])
    assert (first.default_ttl, second.default_ttl) == (timedelta(minutes=5), timedelta(hours=1))
    assert [store.closes for store in opened] == [0, 0]
    managers.close()
    assert [store.closes for store in opened] == [1, 1]
    managers.close()  # nothing more to close
    assert [store.closes for store in opened] == [1, 1]


def test_a_manager_that_cannot_be_built_closes_its_store() -> None:
    opened: list[ClosingStore] = []

    def open_store() -> ClosingStore:
        opened.append(ClosingStore())
        return opened[-1]

    managers = Managers(open_store)
    with pytest.raises(InvalidInput):
        managers(default_ttl="ten minutes")
    assert [store.closes for store in opened] == [1]


class ClosingStore(InMemoryEventStore):
    """The in-memory store, counting its closes."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def test_requires_knows_the_capabilities() -> None:
    assert set(CAPABILITIES) == {"idempotency", "purge"}
    assert requires("purge").mark.args == ("purge",)
    with pytest.raises(ValueError, match="unknown capability 'purg'"):
        requires("purg")


@pytest.mark.parametrize("declared", [{"purge"}, frozenset(), ["purge"], ("purge",)])
def test_a_backend_declares_what_it_lacks_as_a_set_of_names(declared: Any) -> None:
    assert lacking(declared) == frozenset(declared)


@pytest.mark.parametrize(("declared", "error"), [("purge", TypeError), (None, TypeError), ({"Purge"}, ValueError)])
def test_other_declarations_are_refused(declared: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        lacking(declared)
