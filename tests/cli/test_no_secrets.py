"""No password in what the command line shows: every URL it prints or logs goes through SQLAlchemy's
``render_as_string(hide_password=True)`` — `db upgrade`'s report, the worker's and serve's start lines,
migrate-store's report, error lines, settings' repr — whatever the password holds (``/ @ : %``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from sessionflow.entrypoints.cli import app
from sessionflow.entrypoints.cli.parsing import mask_url
from sessionflow.settings import Settings
from tests.support.backends import postgres_database
from tests.support.postgres import free_port

#: Each piece of the password is unique, so that no fragment of it can hide in the output.
PIECES = ("xq7", "zk9", "wv3", "mp4", "ju8")
#: A password with ``/ @ : %`` in it.
PASSWORD = "xq7/zk9@wv3:mp4%ju8"
#: As a URL must carry it: percent-encoded.
ENCODED = quote(PASSWORD, safe="")
#: As people also write it: ``/`` and ``:`` left as they are (SQLAlchemy reads them), ``@`` and ``%`` encoded.
HALF_ENCODED = "xq7/zk9%40wv3:mp4%25ju8"


def leaked(text: str) -> list[str]:
    """The pieces of the password found in ``text``."""
    return [piece for piece in PIECES if piece in text]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "alice"
    return env


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sessionflow", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own on the test server (trust authentication: any password is accepted); its name."""
    with postgres_database(postgres_url, "sf_secrets") as url:
        yield str(make_url(url).database)


def with_password(postgres_url: str, database: str, password: str) -> str:
    server = make_url(postgres_url)
    return (f"postgresql+psycopg://{server.username or 'postgres'}:{password}@{server.host}:{server.port}"
            f"/{database}")


@pytest.mark.parametrize("password", [ENCODED, HALF_ENCODED], ids=["encoded", "half-encoded"])
def test_db_upgrade_the_worker_and_migrate_store_hide_the_postgres_password(
        postgres_url: str, database: str, password: str, tmp_path: Path) -> None:
    url = with_password(postgres_url, database, password)
    assert make_url(url).password == PASSWORD  # the URL really carries it
    upgraded = run("--db", url, "db", "upgrade", "--json", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    assert json.loads(upgraded.stdout)["database"].count("***") == 1
    # The three commands on the upgraded database are independent of each other: run them at once.
    with ThreadPoolExecutor(max_workers=3) as pool:
        human, worker, copied = pool.map(lambda args: run(*args, cwd=tmp_path), [
            ("--db", url, "db", "upgrade"),
            ("--db", url, "-v", "worker", "--for", "1s", "--interval", "30s"),
            ("migrate-store", "--from", url, "--to", f"sqlite:///{tmp_path / 'copy.db'}", "--json")])
    assert "up to date" in human.stdout
    assert worker.returncode == 0, worker.stderr[-2000:]
    start_line = worker.stderr.splitlines()[0]
    assert start_line.startswith("worker: expiring sessions of postgresql+psycopg://")
    assert "***" in start_line
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert "***" in json.loads(copied.stdout)["from"]
    for done in (upgraded, human, worker, copied):
        assert leaked(done.stdout + done.stderr) == [], done.stdout + done.stderr


@pytest.mark.parametrize("password", [ENCODED, HALF_ENCODED], ids=["encoded", "half-encoded"])
def test_error_lines_hide_the_password(password: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    sid = str(uuid.uuid4())
    commands = [args
                for url in (f"postgresql+psycopg://user:{password}@127.0.0.1:{port}/db",
                            f"redis://user:{password}@127.0.0.1:{port}/0",
                            f"nosuchdriver://user:{password}@127.0.0.1:{port}/db",
                            f"postgresql+psycopg://user:{password}@127.0.0.1:notaport/db")
                for args in (["--db", url, "show", sid], ["--db", url, "--json", "show", sid],
                             ["-v", "--db", url, "show", sid])]
    # The commands are independent (most of their time is the Redis client's back-off): run a few at once.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda args: run(*args, cwd=tmp_path), commands))
    for args, done in zip(commands, results, strict=True):
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr, args
        assert leaked(done.stdout + done.stderr) == [], done.stderr


def test_serve_start_line_hides_the_password(postgres_url: str, database: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    def no_server(self: uvicorn.Server, sockets: Any = None) -> None:
        self.config.app.state.manager.close()
        metrics = self.config.app.state.metrics
        if metrics is not None:
            metrics.detach()
            metrics.unregister()

    monkeypatch.setattr(uvicorn.Server, "run", no_server)
    for name in [n for n in os.environ if n.startswith("SESSIONFLOW_")]:
        monkeypatch.delenv(name)
    url = with_password(postgres_url, database, ENCODED)
    result = CliRunner().invoke(app, ["--db", url, "serve", "--no-timeouts"], env={})
    assert result.exit_code == 0, result.output
    assert "serving postgresql+psycopg://" in result.stderr
    assert ":***@" in result.stderr
    assert leaked(result.output) == []


def test_mask_url_hides_every_kind_of_password() -> None:
    for url in (f"postgresql+psycopg://u:{ENCODED}@h:5432/db", f"postgresql+psycopg://u:{HALF_ENCODED}@h/db",
                f"redis://:{ENCODED}@127.0.0.1:6379/0", f"rediss://user:{ENCODED}@h:6380/1?ssl_cert_reqs=none",
                "redis://u:xq7@zk9@h:1/0", "postgresql://u:xq7/zk9@wv3@h/db?application_name=a@b"):
        masked = mask_url(url)
        assert leaked(masked) == [], (url, masked)
        assert "***" in masked
    assert mask_url("sqlite:///./sessionflow.db") == "sqlite:///./sessionflow.db"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert mask_url("sqlite:///:memory:") == "sqlite:///:memory:"


def test_settings_repr_hides_the_password() -> None:
    for password in (ENCODED, HALF_ENCODED, "xq7@zk9"):
        settings = Settings(database_url=f"postgresql+psycopg://u:{password}@h/db")
        assert leaked(repr(settings)) == []
        assert leaked(str(settings)) == []
        assert "u:***@h/db" in repr(settings)
    assert "redis://:***@h:6379/0" in repr(Settings(database_url=f"redis://:{ENCODED}@h:6379/0"))
    assert "sqlite:///x.db" in repr(Settings(database_url="sqlite:///x.db"))
