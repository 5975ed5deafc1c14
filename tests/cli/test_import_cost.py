"""A command imports what it uses: `sessionflow start` on an SQLite file whose schema is up to date loads no
migration tool, no scheduler, no web framework and no PostgreSQL driver; `--help` loads neither the library nor
SQLAlchemy nor typer (it prints the package's copy of typer's rendering: tests/cli/test_static_help.py). What is
imported is read from the interpreter's own report (``python -X importtime``), not timed.

Also here: what makes that possible — the head revision the package knows without Alembic equals the scripts',
an old or new database is still migrated on first use, and the settings a command reads without the settings
machinery are the manager's defaults.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionflow import SessionManager, SessionStatus
from sessionflow.adapters.sqlalchemy.migrations import HEAD_REVISION, alembic_config, head_revision, stored_revision
from sessionflow.bootstrap import create_engine
from sessionflow.entrypoints.cli.context import SettingsSource
from sessionflow.entrypoints.cli.options import StatusChoice
from sessionflow.settings import Settings

#: What `start` on SQLite must not load: migrations, the scheduler, the web stack, PostgreSQL.
FORBIDDEN = ("alembic", "apscheduler", "fastapi", "starlette", "uvicorn", "psycopg", "psycopg2",
             "opentelemetry", "sessionflow.adapters.sqlalchemy.postgres", "sessionflow.adapters.apscheduler")
#: Nor these, which a one-shot write does not use: the settings machinery, rich (stdout is a pipe), YAML, the
#: commands it does not run.
UNUSED = ("pydantic_settings", "rich", "yaml", "sessionflow.settings", "sessionflow.loader",
          "sessionflow.entrypoints.http")
#: The modules of the command groups a session command does not run (each is imported when one of its commands
#: is run or listed), and ``Cli``'s, which imports them all.
OTHER_COMMANDS = tuple(f"sessionflow.entrypoints.cli.{name}" for name in (
    "apply", "commands", "completion", "demo", "diagrams", "feed", "history", "maintenance", "migrate", "retention",
    "scenarios", "schema", "streams", "worker"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONFLOW_")}
    env["SESSIONFLOW_PERFORMER"] = "alice"
    return env


def imported(*args: str, cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules ``python -m sessionflow ARGS`` imports, and how it ran."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "sessionflow", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return names - {"package"}, done


def loaded(names: set[str], packages: tuple[str, ...]) -> list[str]:
    """The names of ``names`` that are one of ``packages`` or inside one."""
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))


def postgres_dialect_from_the_schema() -> bool:
    """Whether importing the SQL schema alone (``tables.py``, owned by the store) loads SQLAlchemy's PostgreSQL
    dialect, for its JSONB column type: then no command on SQLite can avoid it."""
    code = "import sys, sessionflow.adapters.sqlalchemy.tables; print('sqlalchemy.dialects.postgresql' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip() == "True"


@pytest.fixture
def migrated(tmp_path: Path) -> tuple[str, str]:
    """An SQLite file at the newest schema revision holding one pending session: its URL and the session's id."""
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    with SessionManager.open(url) as manager:
        return url, str(manager.create(performer_id="alice").id)


def test_start_on_sqlite_imports_no_migrations_scheduler_web_framework_or_postgres(
        migrated: tuple[str, str], tmp_path: Path) -> None:
    url, sid = migrated
    names, done = imported("--db", url, "start", sid, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "in_progress"
    assert "sessionflow.adapters.sqlalchemy.persistence" in names  # the report is read right
    assert loaded(names, FORBIDDEN) == []
    assert loaded(names, UNUSED) == []
    assert loaded(names, OTHER_COMMANDS) == []


def test_a_write_with_an_idempotency_key_loads_no_more(migrated: tuple[str, str], tmp_path: Path) -> None:
    url, sid = migrated
    names, done = imported("--db", url, "start", sid, "--idempotency-key", "k-1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sessionflow.adapters.sqlalchemy.persistence" in names  # the report is read right
    assert loaded(names, (*FORBIDDEN, *UNUSED, *OTHER_COMMANDS)) == []


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_show_in_a_script_loads_neither_rich_nor_the_other_commands(
        json_output: bool, migrated: tuple[str, str], tmp_path: Path) -> None:
    url, sid = migrated
    names, done = imported("--db", url, "show", sid, *(["--json"] if json_output else []), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sid in done.stdout
    assert loaded(names, (*FORBIDDEN, *UNUSED, *OTHER_COMMANDS)) == []


def test_a_command_still_runs_through_cli_once_it_is_built(migrated: tuple[str, str], tmp_path: Path) -> None:
    """``Cli`` is built only when named; a program that names it (and patches it) still has every command run
    through it."""
    url, sid = migrated
    code = ("import sys\nfrom sessionflow.entrypoints.cli import Cli, main\n"
            "Cli.show = lambda self, session_id: print('through Cli', session_id)\n"
            "main(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, "--db", url, "show", sid], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"through Cli {sid}"


def test_start_on_sqlite_loads_no_postgresql_dialect(migrated: tuple[str, str], tmp_path: Path) -> None:
    if postgres_dialect_from_the_schema():
        pytest.xfail("the SQL schema (adapters/sqlalchemy/tables.py) imports SQLAlchemy's PostgreSQL dialect for "
                     "its JSONB column")
    url, sid = migrated
    names, done = imported("--db", url, "start", sid, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert loaded(names, ("sqlalchemy.dialects.postgresql",)) == []


@pytest.mark.parametrize("command", ["create", "complete", "show", "history", "list"])
def test_the_other_one_shot_commands_load_no_migrations_scheduler_or_web_framework(
        command: str, migrated: tuple[str, str], tmp_path: Path) -> None:
    url, sid = migrated
    with SessionManager.open(url) as manager:
        manager.start(sid, performer_id="alice")
    args = {"create": ["create"], "complete": ["complete", sid], "show": ["show", sid], "history": ["history", sid],
            "list": ["list"]}[command]
    names, done = imported("--db", url, *args, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert loaded(names, FORBIDDEN) == []


def test_help_loads_neither_the_library_nor_sqlalchemy_nor_typer(tmp_path: Path) -> None:
    names, done = imported("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "Usage: " in done.stdout
    assert "sessionflow.errors" in names  # the report is read right
    assert loaded(names, ("typer", "click", "sessionflow.entrypoints.cli")) == []  # the shipped copy is printed
    assert loaded(names, ("sqlalchemy", "pydantic", "rich", "statemachine", "sessionflow.domain.models",
                          "sessionflow.application", "sessionflow.bootstrap", *FORBIDDEN)) == []


def test_a_migration_due_still_loads_alembic(tmp_path: Path) -> None:
    """The check above would pass vacuously if the report missed imports: a new database does load Alembic."""
    names, done = imported("--db", f"sqlite:///{tmp_path / 'new.db'}", "create", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alembic" in names


# ---------------------------------------------------------------------- what makes it possible


def test_the_head_revision_the_package_knows_is_the_scripts_head() -> None:
    assert head_revision() == HEAD_REVISION, (
        "a migration was added: set HEAD_REVISION in sessionflow/adapters/sqlalchemy/migrations.py to its revision")


def test_the_revision_is_read_with_one_query(migrated: tuple[str, str], tmp_path: Path) -> None:
    url, _ = migrated
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert stored_revision(conn) == HEAD_REVISION
    finally:
        engine.dispose()
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with empty.connect() as conn:
            assert stored_revision(conn) is None  # no version table: Alembic decides
    finally:
        empty.dispose()


def test_an_old_database_is_upgraded_by_the_first_command(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0005")
        with engine.connect() as conn:
            assert stored_revision(conn) == "0005"
    finally:
        engine.dispose()
    names, done = imported("--db", url, "create", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alembic" in names
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert stored_revision(conn) == HEAD_REVISION
    finally:
        engine.dispose()
    with SessionManager.open(url, migrate=False) as manager:
        assert manager.get(json.loads(done.stdout)["id"]).version == 1


def test_default_settings_are_the_managers_defaults() -> None:
    """Without a settings file or variable, a command opens the manager with no option: the defaults must agree."""
    parameters = inspect.signature(SessionManager.__init__).parameters
    for name, value in Settings().manager_options().items():
        assert parameters[name].default == value, name


def test_settings_are_read_when_the_environment_sets_any(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert SettingsSource(overrides={"database_url": url}, environ={"SESSIONFLOW_PERFORMER": "a"}).defaults_only
    assert SettingsSource(environ={"SESSIONFLOW_DATABASE_URL": url}).url == url
    assert not SettingsSource(environ={"SESSIONFLOW_SESSION__TIMEOUT_SECONDS": "600"}).defaults_only
    assert not SettingsSource(environ={"sessionflow_policies__enforce_owner": "true"}).defaults_only
    assert not SettingsSource(environ={"SESSIONFLOW_DATABASE_URL": ""}).defaults_only
    assert not SettingsSource(config=tmp_path / "settings.toml").defaults_only
    env = {**_env(), "SESSIONFLOW_SESSION__TIMEOUT_SECONDS": "600"}
    done = subprocess.run([sys.executable, "-m", "sessionflow", "--db", url, "create", "--json"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ttl_seconds"] == 600


def test_the_states_list_takes_are_the_session_states() -> None:
    assert [s.value for s in StatusChoice] == [s.value for s in SessionStatus]
