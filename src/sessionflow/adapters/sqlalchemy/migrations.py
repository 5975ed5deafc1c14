"""Schema migrations with Alembic, usable from an installed wheel as well as from the repository.

The migration scripts live in the repository's top-level ``alembic/`` folder and are shipped inside the
wheel as ``sessionflow/_alembic``; :func:`script_location` finds whichever is present.

Opening a database that is already up to date costs one query and no Alembic: :data:`HEAD_REVISION` is the
newest revision of the scripts, known to the package as a constant (a test checks it against the scripts), and
:func:`stored_revision` reads the database's revision from ``alembic_version`` with one ``SELECT``. Alembic is
imported only when a migration is due, or by the functions that need it (:func:`head_revision`,
:func:`schema_drift`...).
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from sessionflow.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["HEAD_REVISION", "VERSION_TABLE", "alembic_config", "current_revision", "head_revision", "is_up_to_date",
           "schema_drift", "script_location", "stored_revision", "upgrade"]

#: The newest revision of the migration scripts (``alembic/versions``). A new migration changes it too: the
#: test suite fails while they disagree.
HEAD_REVISION: Final = "0009"
#: The table where Alembic records a database's revision.
VERSION_TABLE: Final = "alembic_version"

_WRITE = "sessionflow_write"
#: The advisory lock that serialises the upgrades of one PostgreSQL database.
_MIGRATE_LOCK: Final = "hashtextextended('sessionflow:migrate', 0)"


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
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the scripts know (read from the scripts by Alembic; :data:`HEAD_REVISION` is the
    same without Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the scripts always have a head
        raise StoreError("no migration head found")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None`` for an empty database), as Alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def stored_revision(conn: Connection) -> str | None:
    """The database's revision read with one query, without Alembic; ``None`` unless the database records exactly
    one (an empty database, no version table yet, several heads: Alembic then takes a look)."""
    try:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).fetchall()
    except DBAPIError:  # no version table yet (an empty database), or not readable
        rows = []
    finally:
        if conn.in_transaction():
            conn.rollback()
    return str(rows[0][0]) if len(rows) == 1 else None


def is_up_to_date(engine: Engine) -> bool:
    """Whether ``engine``'s database is at :data:`HEAD_REVISION` (one query, no Alembic)."""
    with engine.connect() as conn:
        return stored_revision(conn) == HEAD_REVISION


def _lock_for_upgrade(conn: Connection) -> None:
    """Take the upgrade lock of a PostgreSQL database, waiting for another upgrade to end.

    The wait is a poll (``pg_try_advisory_lock``, then a pause outside any transaction), not a blocking
    ``pg_advisory_lock``: a statement blocked on the lock would hold a snapshot, and a migration that builds an
    index ``CONCURRENTLY`` while holding the lock waits for every older snapshot to end — a deadlock PostgreSQL
    would break by failing the upgrade."""
    pause = 0.05
    while True:
        got = conn.execute(text(f"SELECT pg_try_advisory_lock({_MIGRATE_LOCK})")).scalar()
        conn.commit()
        if got:
            return
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema of ``engine``'s database up to ``revision``; safe to run from many processes.

    Returns the revision the database was at before. A database already at the head costs one query (Alembic is
    not imported). On PostgreSQL an advisory lock of the connection serialises concurrent upgrades, and Alembic
    runs the migrations in its own transaction (so that a migration may commit and build an index
    ``CONCURRENTLY``, see revision 0007); on SQLite the write transaction (``BEGIN IMMEDIATE``) does.
    """
    with engine.connect() as conn:
        if revision == "head" and stored_revision(conn) == HEAD_REVISION:
            return HEAD_REVISION
    from alembic import command

    head = head_revision()
    with engine.connect() as conn:
        if revision == "head" and current_revision(conn) == head:
            return head
        conn.rollback()
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")  # transactional DDL
            _lock_for_upgrade(conn)
            try:
                before = current_revision(conn)
                conn.commit()  # Alembic begins (and commits) the migrations' transaction itself
                if before != head or revision != "head":
                    command.upgrade(alembic_config(connection=conn), revision)
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text(f"SELECT pg_advisory_unlock({_MIGRATE_LOCK})"))
                conn.commit()
            return before
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            before = current_revision(conn)
            if before != head or revision != "head":
                command.upgrade(alembic_config(connection=conn), revision)
        return before


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the tables' definition and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sessionflow.adapters.sqlalchemy.tables import metadata

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))
