"""pytest run in a fresh project directory, as a project outside this repository runs it: one test module, the
installed sessionflow (the one these tests import, not this repository's ``tests`` or ``conftest.py``) and its
pytest plugin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import sessionflow

#: The development environment's unrelated plugins (slow to import) are left out; sessionflow's is not.
OTHER_PLUGINS_OFF = ("-p", "no:hypothesispytest", "-p", "no:schemathesis", "-p", "no:anyio", "-p", "no:cacheprovider")


def run_pytest(project: Path, module: str, *args: str, path: Sequence[Path] = (),
               env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """pytest on ``module`` (its source, dedented) written into ``project`` as ``test_store_contract.py``;
    ``path``: directories put on ``sys.path`` before this sessionflow; ``env``: more environment variables."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "test_store_contract.py").write_text(textwrap.dedent(module), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    this_sessionflow = Path(sessionflow.__file__).resolve().parents[1]  # this sessionflow, not the repository
    environment["PYTHONPATH"] = os.pathsep.join([*map(str, path), str(this_sessionflow)])
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", *OTHER_PLUGINS_OFF, "test_store_contract.py",
                           *args], cwd=project, env=environment, capture_output=True, text=True, timeout=timeout)


def outcomes(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """``{"passed": 8, "skipped": 6, ...}`` from pytest's summary line."""
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    return {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)",
                                                           summary)}
