"""``sessionflow serve`` refuses to listen beyond the loopback interface without bearer tokens, says why and
exits as for a usage error (2), unless ``--insecure-no-auth``; on loopback, or with tokens, it serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from sessionflow.entrypoints.cli import ExitCode, app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``serve`` handed to uvicorn, instead of running a server."""
    calls: list[dict[str, Any]] = []

    def run(self: uvicorn.Server, sockets: Any = None) -> None:
        calls.append({"host": self.config.host, "port": self.config.port, "app": self.config.app})
        self.config.app.state.manager.close()
        metrics = self.config.app.state.metrics
        if metrics is not None:
            metrics.detach()
            metrics.unregister()

    monkeypatch.setattr(uvicorn.Server, "run", run)
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    return calls


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    return CliRunner().invoke(app, ["--db", db, "serve", *args], env=env or {})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "myhost.example"])
def test_serving_beyond_loopback_without_tokens_is_refused_and_says_why(
        tmp_path: Path, served: list[dict[str, Any]], host: str) -> None:
    result = _serve(tmp_path, "--host", host)
    assert result.exit_code == ExitCode.USAGE == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith(f"error: refusing to serve on {host} without authentication")
    for hint in ("SESSIONFLOW_HTTP_TOKENS", "SESSIONFLOW_HTTP_TOKENS_FILE", "--host 127.0.0.1",
                 "--insecure-no-auth"):
        assert hint in line
    assert served == []
    assert not (tmp_path / "served.db").exists()  # refused before the database was opened


def test_the_refusal_as_json(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    result = _serve(tmp_path, "--host", "0.0.0.0", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stderr)
    assert (error["error"], error["code"], error["exit_code"]) == ("CliError", "authentication_required", 2)
    assert served == []


def test_insecure_no_auth_serves_anyway_with_a_warning(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    result = _serve(tmp_path, "--host", "0.0.0.0", "--port", "8123", "--insecure-no-auth")
    assert result.exit_code == 0, result.output
    assert [(call["host"], call["port"]) for call in served] == [("0.0.0.0", 8123)]
    assert served[0]["app"].state.auth is None
    assert "without authentication (--insecure-no-auth)" in result.stderr


@pytest.mark.parametrize(("host", "env"), [
    ("127.0.0.1", {}),
    ("localhost", {}),
    ("0.0.0.0", {"SESSIONFLOW_HTTP_TOKENS": '{"tok": "alice"}'}),
])
def test_loopback_or_tokens_serve(tmp_path: Path, served: list[dict[str, Any]], host: str,
                                  env: dict[str, str]) -> None:
    result = _serve(tmp_path, "--host", host, env=env)
    assert result.exit_code == 0, result.output
    assert [call["host"] for call in served] == [host]
    assert (served[0]["app"].state.auth is not None) is bool(env)
    assert "--insecure-no-auth" not in result.stderr


def test_the_refusal_from_a_real_process(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIONFLOW_")}
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", f"sqlite:///{tmp_path / 'p.db'}", "serve",
                           "--host", "0.0.0.0"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "refusing to serve on 0.0.0.0 without authentication" in done.stderr
    assert "Traceback" not in done.stderr
