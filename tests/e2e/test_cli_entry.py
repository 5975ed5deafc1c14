"""The ``sessionflow`` console script and ``python -m sessionflow`` start in ``sessionflow.__main__``, which looks
for the ``cli`` extra before it imports the command line: without typer (or rich) they print one line naming
``pip install 'sessionflow[cli]'`` and exit 2, never a traceback."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "sessionflow.__main__:main"

#: Python run before the entry point: hides the named package as if it were not installed.
HIDE = "import sys; sys.modules[{name!r}] = None; "


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("missing", ["typer", "rich"])
@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_without_the_cli_extra_one_line_says_what_to_install(missing: str, how: str, tmp_path: Path) -> None:
    start = ("from sessionflow.__main__ import main; main(['demo'])" if how == "console script"
             else "import runpy; runpy.run_module('sessionflow', run_name='__main__')")
    result = _run(HIDE.format(name=missing) + start, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert missing in result.stderr
    assert "pip install 'sessionflow[cli]'" in result.stderr
    assert not (tmp_path / "sessionflow.db").exists()


def test_with_the_cli_extra_the_same_entry_point_runs_the_command_line(tmp_path: Path) -> None:
    result = _run("import sys; from sessionflow.__main__ import main; sys.argv = ['sessionflow', '--version']; main()",
                  tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sessionflow ")


def test_the_console_script_points_at_the_checking_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["sessionflow"] == ENTRY
    installed = importlib.metadata.entry_points(group="console_scripts", name="sessionflow")
    assert [e.value for e in installed] == [ENTRY]


def test_the_extras_named_in_the_readme_exist_and_all_gathers_them() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    features = {"cli", "http", "metrics", "postgres", "redis", "asyncio", "otel"}
    assert features <= set(extras)
    assert extras["all"] == ["sessionflow[postgres,redis,asyncio,http,cli,metrics,diagram,otel]"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = readme[readme.index("## Install"):readme.index("\n## ", readme.index("## Install") + 1)]
    for extra in sorted(features | {"all"}):
        assert f"[{extra}]" in install, extra
    assert not any("httpx" in requirement for requirement in extras["http"])  # the HTTP service never imports it
