"""One version, read from one place: ``pyproject.toml``'s ``[project] version``.

The installed distribution's metadata, ``sessionflow.__version__`` and ``sessionflow --version`` all give it.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import sessionflow
from sessionflow.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> str:
    """The version written in pyproject.toml: the one source of truth."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project.get("dynamic", []), "the version is written in pyproject.toml, not computed"
    version: str = project["version"]
    return version


def test_the_declared_version_is_a_release_number() -> None:
    """MAJOR.MINOR.PATCH (docs/api.md: before 1.0, a minor release may break with a deprecation)."""
    assert re.fullmatch(r"\d+\.\d+\.\d+", _declared()), _declared()


def test_the_installed_metadata_has_the_declared_version() -> None:
    assert importlib.metadata.version("sessionflow") == _declared(), (
        "the installed metadata is older than pyproject.toml: install the project again")


def test_the_package_reports_the_installed_version() -> None:
    assert sessionflow.__version__ == importlib.metadata.version("sessionflow")
    assert "__version__" in sessionflow.__all__


def test_the_command_line_prints_the_same_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"sessionflow {importlib.metadata.version('sessionflow')}"


def test_the_module_entry_point_prints_it_too() -> None:
    result = subprocess.run([sys.executable, "-m", "sessionflow", "--version"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sessionflow {_declared()}"
