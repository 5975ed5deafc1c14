"""An error of the command line is one line on stderr: an unreachable Redis server prints no retry warnings before
it (unless ``--verbose``), and an in-memory database is refused as a usage error instead of forgetting the
session a command just created."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sessionflow.entrypoints.cli import app
from sessionflow.entrypoints.cli.logs import engine_logging
from tests.support.postgres import free_port


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}


def test_an_unreachable_redis_is_one_line_on_stderr(tmp_path: Path) -> None:
    """The store retries (about 2.5 s) and logs each retry; a one-shot command shows only its error line."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    commands = {
        "list": ["--db", url, "list"],
        "migrate": ["migrate-store", "--from", url, "--to", f"sqlite:///{tmp_path / 'to.db'}"],
        "verbose": ["-v", "--db", url, "show", "00000000-0000-0000-0000-000000000000"],
    }
    running = {name: subprocess.Popen([sys.executable, "-m", "sessionflow", *args], cwd=tmp_path, env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}  # side by side: one retry delay in all
    done = {name: (process.wait(timeout=60), *process.communicate()) for name, process in running.items()}
    for name in ("list", "migrate"):
        code, out, err = done[name]
        assert code == 7, (name, err)
        assert out == ""
        assert len(err.splitlines()) == 1, (name, err)
        assert "retrying" not in err
        assert "Traceback" not in err
    assert done["list"][2].startswith("error: redis unreachable: ")
    code, _, err = done["verbose"]  # --verbose: the retries are shown, one line each, then the error
    assert code == 7
    lines = err.splitlines()
    assert len(lines) > 1
    assert all("WARNING sessionflow.store: " in line and "retrying" in line for line in lines[:-1]), err
    assert lines[-1].startswith("error: ")


@pytest.mark.parametrize("long_running", [False, True])
def test_the_store_retry_warnings_are_kept_for_long_running_commands(
        long_running: bool, capsys: pytest.CaptureFixture[str]) -> None:
    store = logging.getLogger("sessionflow.store")
    with engine_logging(False, long_running=long_running):
        store.warning("redis connection lost (refused); retrying on a new one")
        store.error("a store error is always shown")
        logging.getLogger("sessionflow.waker").warning("other warnings are always shown")
    err = capsys.readouterr().err
    assert ("retrying on a new one" in err) is long_running
    assert "a store error is always shown" in err
    assert "other warnings are always shown" in err


IN_MEMORY = ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite+pysqlite://",
             "sqlite:///file:shared?mode=memory&cache=shared&uri=true", "sqlite:///file::memory:?cache=shared"]


@pytest.mark.parametrize("url", IN_MEMORY)
def test_an_in_memory_database_is_refused_as_a_usage_error(url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--db", url, "create", "--performer", "p"], env=_env())
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: the database {url} is in memory: it would be gone when this command exits")
    assert list(tmp_path.iterdir()) == []


def test_an_in_memory_database_from_the_environment_and_with_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--json", "list"], env={**_env(), "SESSIONFLOW_DATABASE_URL": "sqlite://"})
    assert result.exit_code == 2, result.output
    document = json.loads(result.stderr)
    assert (document["code"], document["exit_code"]) == ("usage", 2)
    assert "in memory" in document["message"]


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_migrate_store_refuses_an_in_memory_store(option: str, tmp_path: Path) -> None:
    file_url = f"sqlite:///{tmp_path / 'file.db'}"
    urls = {"--from": file_url, "--to": file_url, option: "sqlite:///:memory:"}
    result = CliRunner().invoke(app, ["migrate-store", "--from", urls["--from"], "--to", urls["--to"]], env=_env())
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(f"error: {option} sqlite:///:memory: is in memory")


def test_a_command_that_opens_no_database_still_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db", "sqlite://", "diagram", "--format", "mermaid"], env=_env())
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("stateDiagram-v2")
