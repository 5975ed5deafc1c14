"""The built wheel is self-contained: its migrations run from site-packages, not from the repository, and the
store contract suite it ships runs from there too."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.pytest_runs import outcomes, run_pytest

ROOT = Path(__file__).resolve().parents[2]


class Installed:
    """The wheel built from this repository, and the directory it is installed in (``pip install --target``)."""

    def __init__(self, wheel: Path, target: Path) -> None:
        self.wheel = wheel
        self.target = target
        self.names = zipfile.ZipFile(wheel).namelist()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(ROOT)],
        check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("sessionflow-*.whl")
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    return Installed(wheel, target)


def test_wheel_ships_migrations_and_opens_a_database_outside_the_repository(installed: Installed,
                                                                           tmp_path: Path) -> None:
    names = installed.names
    assert "sessionflow/_alembic/env.py" in names
    assert any(n.startswith("sessionflow/_alembic/versions/0001_") for n in names)
    assert "sessionflow/py.typed" in names

    work = tmp_path / "elsewhere"
    work.mkdir()
    script = (
        "import sessionflow, sys\n"
        "from sessionflow import SessionManager\n"
        "from sessionflow.adapters.sqlalchemy.migrations import script_location\n"
        "assert sessionflow.__file__.startswith(sys.argv[1]), sessionflow.__file__\n"
        "assert script_location().startswith(sys.argv[1]), script_location()\n"
        "with SessionManager.open() as m:\n"
        "    s = m.create(performer_id='p')\n"
        "with SessionManager.open() as m:\n"
        "    print(m.get(s.id).version)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(installed.target))
    result = subprocess.run([sys.executable, "-c", script, str(installed.target)], cwd=work, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert (work / "sessionflow.db").exists()


#: A backend's test module, run from the installed wheel: part of the suite, and where it was imported from.
FROM_THE_WHEEL = '''
import pytest

import sessionflow.testing.contract
from sessionflow import InMemoryEventStore
from sessionflow.testing.contract import *  # noqa: F403


@pytest.fixture
def sessionflow_store_factory():
    return InMemoryEventStore


def test_the_suite_is_the_installed_one():
    assert sessionflow.testing.contract.__file__.startswith({target!r})
'''


def test_wheel_ships_the_contract_suite_which_runs_from_site_packages(installed: Installed, tmp_path: Path) -> None:
    suite = ROOT / "src" / "sessionflow" / "testing" / "contract"
    modules = {f"sessionflow/testing/contract/{path.name}" for path in suite.glob("*.py")}
    assert len(modules) > 10
    assert modules | {"sessionflow/testing/__init__.py", "sessionflow/pytest_plugin.py"} <= set(installed.names)
    assert not [name for name in installed.names if name.startswith(("tests/", "sessionflow/tests/"))]

    # Nothing of this repository is on the run's path: a suite module importing from ``tests`` would not import.
    module = FROM_THE_WHEEL.replace("{target!r}", repr(str(installed.target)))
    run = run_pytest(tmp_path / "project", module, "-k", "TestLifecycle or the_installed_one",
                     path=[installed.target])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = outcomes(run)
    assert set(counts) == {"passed", "deselected"}, run.stdout.strip().splitlines()[-1]
    assert counts["passed"] > 20
