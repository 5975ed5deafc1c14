"""Schema migrations with Alembic, usable from an installed wheel as well as from the repository.

The migration scripts live in the repository's top-level ``alembic/`` folder and are shipped inside the
wheel as ``sessionflow/_alembic``; :func:`script_location` finds whichever is present.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from sessionflow.adapters.sqlalchemy.tables import metadata
from sessionflow.errors import StoreError

__all__ = ["alembic_config", "current_revision", "head_revision", "schema_drift", "script_location", "upgrade"]

_WRITE = "sessionflow_write"


def script_location() -> str:
    """The folder holding ``env.py`` and ``versions/``."""
    packaged = resources.files("sessionflow") / "_alembic"
    if packaged.is_dir() and (packaged / "env.py").is_file():
        return str(packaged)
    repository = Path(__file__).resolve().parents[4] / "alembic"
    if (repository / "env.py").is_file():
        return str(repository)
    raise StoreError("the sessionflow migration scripts are missing from this installation")


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic :class:`~alembic.config.Config` for sessionflow's scripts (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", script_location())
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the scripts know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the scripts always have a head
        raise StoreError("no migration head found")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema of ``engine``'s database up to ``revision``; safe to run from many processes.

    Returns the revision the database was at before. On PostgreSQL an advisory lock serialises
    concurrent upgrades; on SQLite the write transaction (``BEGIN IMMEDIATE``) does.
    """
    head = head_revision()
    with engine.connect() as conn:
        if revision == "head" and current_revision(conn) == head:
            return head
        conn.rollback()
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")  # transactional DDL and the lock
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended('sessionflow:migrate', 0))"))
            before = current_revision(conn)
            if before != head or revision != "head":
                command.upgrade(alembic_config(connection=conn), revision)
        return before


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the tables' definition and the database (empty when they agree)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
