"""A backend package outside sessionflow, found through its entry point: a toy package (a module and its
``*.dist-info`` with an ``entry_points.txt`` naming the factory in the group ``sessionflow.stores``) put on
``sys.path`` for the test, as installing it would, and opened by its URL scheme through every way of opening a
store — with no registration in the process and no change to sessionflow; and the contract suite shipped in
the package (``sessionflow.testing.contract``) run on it, as the backend's own tests would run it."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sessionflow import AsyncSessionManager, SessionManager
from sessionflow.adapters.aio import ThreadRunner
from sessionflow.bootstrap import create_store
from sessionflow.entrypoints.cli import app
from sessionflow.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
MODULE = "toy_backend_ep"

SOURCE = '''
"""A toy store backend: sessionflow's in-memory store under the scheme toyep://."""

from typing import Any

from sessionflow.adapters.memory import InMemoryEventStore

OPENED: list[tuple[str, dict[str, Any]]] = []


class ToyStore(InMemoryEventStore):
    def __init__(self, url: str, path: str | None) -> None:
        super().__init__()
        self.url, self.path = url, path


def open_toy(url: str, *, toy_path: str | None = None, **options: Any) -> ToyStore:
    OPENED.append((url, {"toy_path": toy_path, **options}))
    return ToyStore(url, toy_path)
'''


#: The backend's own test module: the shipped contract suite on stores opened by URL (through the entry point).
CONTRACT_TESTS = '''
import pytest

from sessionflow.bootstrap import create_store
from sessionflow.testing.contract import *  # noqa: F403


@pytest.fixture
def sessionflow_store_factory():
    return lambda: create_store("toyep://contract")
'''


def install(root: Path) -> None:
    """The toy package under ``root``: its module, and its ``*.dist-info`` naming the entry point."""
    (root / f"{MODULE}.py").write_text(SOURCE, encoding="utf-8")
    info = root / f"{MODULE}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[sessionflow.stores]\ntoyep = {MODULE}:open_toy\n", encoding="utf-8")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The toy package, "installed" on ``sys.path`` of this process."""
    install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


def test_without_the_package_the_scheme_is_unknown() -> None:
    with pytest.raises(InvalidInput, match=r"no store for the scheme 'toyep'.*sessionflow\.stores"):
        SessionManager.open("toyep://nowhere")


def test_the_synchronous_facade_opens_the_store_of_the_entry_point(installed: Any) -> None:
    with SessionManager.open("toyep://here", toy_path="/var/toy", default_ttl=timedelta(minutes=5)) as manager:
        assert isinstance(manager.store, installed.ToyStore)
        assert (manager.store.url, manager.store.path) == ("toyep://here", "/var/toy")
        assert manager.default_ttl == timedelta(minutes=5)  # the manager's option went to the manager
        session = manager.create(performer_id="u1")
        assert manager.get(session.id).status == "pending"
    url, options = installed.OPENED[-1]
    assert url == "toyep://here"
    assert options == {"toy_path": "/var/toy", "cache_size": 10_000, "retries": None, "migrate": True}
    create_store("toyep://again").close()
    assert installed.OPENED[-1][0] == "toyep://again"


def test_the_asyncio_facade_opens_it_on_a_worker_thread(installed: Any) -> None:
    async def main() -> None:
        async with AsyncSessionManager.open("toyep://loop", retries=2) as manager:
            assert isinstance(manager.store, installed.ToyStore)
            assert isinstance(manager.runner, ThreadRunner)  # its I/O blocks: not on the loop
            session = await manager.create(performer_id="u1")
            assert (await manager.get(session.id)).version == 1

    asyncio.run(main())
    assert installed.OPENED[-1] == ("toyep://loop", {
        "toy_path": None, "cache_size": 10_000, "retries": 2, "migrate": True})


def test_the_command_line_opens_it(installed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["--db", "toyep://cli", "create", "--json"], env={"SESSIONFLOW_PERFORMER": "a"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "pending"
    assert installed.OPENED[-1][0] == "toyep://cli"


def test_the_shipped_contract_suite_passes_on_the_backend_of_the_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_toy_contract.py").write_text(CONTRACT_TESTS, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SESSIONFLOW_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT / "src")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly",
         "--rootdir", str(project), str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary
    assert "failed" not in summary
    assert "skipped" not in summary  # the toy store lacks no capability: every contract test ran
