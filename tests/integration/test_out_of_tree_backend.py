"""A backend from outside this repository proves itself with the shipped contract suite.

The package ``toybackend`` is written into a temporary directory, with the ``toybackend-0.1.dist-info/`` an
installed distribution has: its ``METADATA`` and an ``entry_points.txt`` that declares the factory of the URL
scheme ``toy`` in the group ``sessionflow.stores``. That directory is put on ``sys.path`` of a pytest run in a
fresh project directory (nothing is installed), whose test module is what the backend's own tests would be: the
suite imported from ``sessionflow.testing.contract`` and a ``sessionflow_store_factory`` opening ``toy://``
stores by URL. sessionflow finds the factory only through the entry point (nothing calls ``register_store``).

The toy keeps its sessions in sessionflow's in-memory store, behind a class of its own that is no sessionflow
class (it forwards every call), so the route from the URL to the store is what is under test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support.pytest_runs import outcomes, run_pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sessionflow.stores") is None,
    reason="this sessionflow has no store registry (sessionflow.stores, which opens the stores of a URL scheme "
           "declared in the entry-point group sessionflow.stores): toy:// cannot be opened through an entry point")

#: The backend package, as its author would ship it.
TOYBACKEND = '''\
"""A toy sessionflow backend: ``toy://`` stores, each a new, empty in-memory store."""

import os
from typing import Any

from sessionflow import InMemoryEventStore


class ToyStore:
    """A store of the toy backend: forwards every call to an in-memory store of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._sessions = InMemoryEventStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sessions, name)


def factory(url: str, **options: Any) -> ToyStore:
    """Opens the store ``url`` names; logs the call to the file ``TOYBACKEND_LOG`` names."""
    with open(os.environ["TOYBACKEND_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{url} {sorted(options)}\\n")
    return ToyStore(url)
'''

#: The backend's tests: the shipped suite, on stores opened by URL, and where those come from.
BACKEND_TESTS = '''
import importlib.metadata

import pytest

from sessionflow.bootstrap import create_store
from sessionflow.stores import ENTRY_POINT_GROUP
from sessionflow.testing.contract import *  # noqa: F403


@pytest.fixture
def sessionflow_store_factory():
    return lambda: create_store("toy://contract")


def test_the_stores_are_the_toy_backend_s_found_through_its_entry_point(sessionflow_store_factory):
    store = sessionflow_store_factory()
    try:
        assert (type(store).__module__, type(store).__name__, store.url) == ("toybackend", "ToyStore",
                                                                             "toy://contract")
    finally:
        store.close()
    (point,) = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name="toy")
    assert (point.value, point.dist.name, point.dist.version) == ("toybackend:factory", "toybackend", "0.1")
'''


def write_backend(site: Path) -> None:
    """``toybackend`` and its ``toybackend-0.1.dist-info/`` in ``site``, as an installer would leave them."""
    package = site / "toybackend"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TOYBACKEND, encoding="utf-8")
    info = site / "toybackend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toybackend\nVersion: 0.1\n"
                                   "Requires-Dist: sessionflow\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[sessionflow.stores]\ntoy = toybackend:factory\n", encoding="utf-8")


@pytest.mark.timeout(600)
def test_a_backend_declared_by_an_entry_point_passes_the_shipped_contract_suite(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_backend(site)
    log = tmp_path / "opened.log"
    run = run_pytest(tmp_path / "project", BACKEND_TESTS, path=[site], env={"TOYBACKEND_LOG": str(log)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = outcomes(run)
    assert set(counts) == {"passed"}, run.stdout.strip().splitlines()[-1]
    opened = log.read_text(encoding="utf-8").splitlines()
    assert len(opened) > counts["passed"] // 2  # most tests open a store (some two or more)
    assert set(opened) == {"toy://contract ['cache_size', 'migrate', 'retries']"}


def test_without_the_entry_point_the_scheme_is_refused(tmp_path: Path) -> None:
    """The counterpart: the same run with no ``entry_points.txt`` opens no store."""
    site = tmp_path / "site"
    write_backend(site)
    (site / "toybackend-0.1.dist-info" / "entry_points.txt").unlink()
    log = tmp_path / "opened.log"
    run = run_pytest(tmp_path / "project", BACKEND_TESTS, "-k", "test_create_uses or test_the_stores_are",
                     path=[site], env={"TOYBACKEND_LOG": str(log)})
    assert run.returncode == 1
    counts = outcomes(run)
    assert "passed" not in counts, run.stdout[-4000:]
    assert counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0) == 2, run.stdout[-4000:]
    assert "InvalidInput" in run.stdout
    assert "scheme 'toy'" in run.stdout
    assert not log.exists()
