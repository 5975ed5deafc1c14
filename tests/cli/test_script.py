"""The shell-script test: full lifecycles through the CLI with --json, parsed as a script would parse them,
including an expiry through a background ``sessionflow worker`` stopped with SIGTERM (``lifecycle.sh``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("lifecycle.sh")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_lifecycle_script_passes(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    env.update(PYTHON=sys.executable, WORK=str(tmp_path))
    result = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=240, check=False)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.stdout.rstrip().endswith("all checks passed")
    assert "Traceback" not in result.stderr
    assert "worker expired" in result.stdout
