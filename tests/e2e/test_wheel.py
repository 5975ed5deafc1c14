"""The built wheel is self-contained: its migrations run from site-packages, not from the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_migrations_and_opens_a_database_outside_the_repository(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
         str(ROOT)],
        check=True, capture_output=True, text=True)
    (wheel,) = wheels.glob("sessionflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sessionflow/_alembic/env.py" in names
    assert any(n.startswith("sessionflow/_alembic/versions/0001_") for n in names)
    assert "sessionflow/py.typed" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
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
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run([sys.executable, "-c", script, str(target)], cwd=work, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
    assert (work / "sessionflow.db").exists()
