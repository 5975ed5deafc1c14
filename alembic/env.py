"""Alembic environment for sessionflow's schema.

Used both by ``sessionflow.adapters.sqlalchemy.migrations.upgrade`` (which passes an open connection in
``config.attributes["connection"]``) and by the ``alembic`` command with ``alembic.ini``
(``sqlalchemy.url`` there, or the ``SESSIONFLOW_DATABASE_URL`` environment variable).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from sessionflow.adapters.sqlalchemy.tables import metadata

config = context.config


def _url() -> str:
    return os.environ.get("SESSIONFLOW_DATABASE_URL") or config.get_main_option("sqlalchemy.url") or (
        "sqlite:///./sessionflow.db")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
