"""The wheel as a user installs it, in a new virtualenv: with no extra the ``sessionflow`` script says in one line
what to install; with only the ``cli`` extra ``sessionflow demo`` runs, without the HTTP, metrics or database
drivers' packages.

It installs the dependencies from the package index, so it is left out of ``make test`` and run by
``make versions`` (``-m slow``), which points ``SESSIONFLOW_TEST_UV`` at a ``uv`` executable to create the
virtualenv and install into it faster; without it, ``venv`` and pip do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: Left out of ``make test``; run when slow tests are asked for (tests/conftest.py).
ONLY_WHEN_SLOW = True

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str | Path], *, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("SESSIONFLOW_")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


class Installer:
    """Creates the virtualenv and installs into it: with uv when ``SESSIONFLOW_TEST_UV`` names it, else pip."""

    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.uv = os.environ.get("SESSIONFLOW_TEST_UV") or None

    def create(self) -> None:
        if self.uv:
            _run([self.uv, "venv", "--quiet", "--python", sys.executable, self.venv])
        else:
            _run([sys.executable, "-m", "venv", self.venv])

    def install(self, requirement: str | Path) -> None:
        if self.uv:
            _run([self.uv, "pip", "install", "--quiet", "--python", self.python, requirement])
        else:
            _run([self.python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--progress-bar", "off",
                  requirement])

    def installed(self) -> set[str]:
        freeze = ([self.uv, "pip", "freeze", "--python", self.python] if self.uv
                  else [self.python, "-m", "pip", "freeze"])
        return {line.split("==")[0].lower() for line in _run(freeze).stdout.split()}


def test_the_wheel_with_only_the_cli_extra_runs_the_demo(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT])
    (wheel,) = wheels.glob("sessionflow-*.whl")
    env = Installer(tmp_path / "venv")
    env.create()
    script = env.venv / "bin" / "sessionflow"
    work = tmp_path / "elsewhere"
    work.mkdir()

    env.install(wheel)
    bare = _run([script, "demo"], cwd=work, check=False)
    assert (bare.returncode, bare.stdout) == (2, ""), bare.stderr
    assert bare.stderr.count("\n") == 1, bare.stderr
    assert "pip install 'sessionflow[cli]'" in bare.stderr
    assert _run([env.python, "-m", "sessionflow", "--help"], cwd=work, check=False).returncode == 2

    env.install(f"{wheel}[cli]")
    installed = env.installed()
    assert {"typer", "rich", "sqlalchemy", "alembic"} <= installed
    assert not installed & {"fastapi", "uvicorn", "httpx", "prometheus-client", "psycopg", "redis", "greenlet"}

    shipped = (ROOT / "src" / "sessionflow" / "entrypoints" / "cli" / "help.txt").read_text(encoding="utf-8")
    assert _run([script, "--help"], cwd=work).stdout == shipped  # the copy of typer's help is in the wheel

    demo = _run([script, "demo"], cwd=work)
    assert demo.stdout.startswith("sessionflow demo"), demo.stdout
    assert "worker stopped: 2 sessions expired" in demo.stderr
    assert (work / "sessionflow.db").exists()
