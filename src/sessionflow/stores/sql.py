"""The built-in SQL stores: SQLite and PostgreSQL by SQLAlchemy URL (``sqlite://``, ``postgresql+psycopg://``).

:func:`create_engine` configures an engine for sessionflow; :func:`open_sql` is the factory of the ``sqlite`` and
``postgresql`` schemes (a :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore`, schema brought up to
date); :func:`open_postgres_async` opens PostgreSQL on psycopg's asyncio driver for the asyncio facade.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore, install_sqlite_pragmas
from sessionflow.adapters.sqlalchemy.persistence import DEFAULT_RETRIES
from sessionflow.application.ports import EventStore
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["ASYNCIO_EXTRA", "DEFAULT_URL", "ENGINE_OPTIONS", "create_engine", "is_in_memory_url",
           "open_postgres_async", "open_sql"]

#: The embedded default: an SQLite file in the current directory.
DEFAULT_URL = "sqlite:///./sessionflow.db"

#: The options of :func:`create_engine`, which ``open(url, ...)`` hands to the SQL stores.
ENGINE_OPTIONS = frozenset({"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "echo",
                            "sqlite_synchronous", "sqlite_busy_timeout"})
#: What installs the asyncio support (SQLAlchemy's greenlet bridge).
ASYNCIO_EXTRA = "pip install 'sessionflow[asyncio]'"
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgresql+psycopg_async"})


def create_engine(
    url: str | None = None,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    pool_recycle: int = 1800,
    pool_pre_ping: bool = False,
    echo: bool = False,
    sqlite_synchronous: str = "NORMAL",
    sqlite_busy_timeout: float = 30.0,
) -> Engine:
    """A SQLAlchemy engine configured for sessionflow.

    SQLite gets WAL, ``synchronous`` (``NORMAL`` by default, ``FULL`` for power-loss durability), a busy
    timeout and ``BEGIN IMMEDIATE`` for writes. PostgreSQL (``postgresql+psycopg://``) gets a connection
    pool of ``pool_size`` + ``max_overflow`` connections; a connection found broken is discarded from the
    pool (``pool_pre_ping=True`` also checks each one before use, at the cost of a round trip).
    Raises :class:`~sessionflow.errors.InvalidInput` for a malformed URL or an unknown driver.
    """
    parsed = _parse(url or DEFAULT_URL)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            options: dict[str, Any] = {"echo": echo, "connect_args": {"check_same_thread": False,
                                                                         "timeout": sqlite_busy_timeout}}
            if parsed.database in (None, "", ":memory:"):
                options["poolclass"] = StaticPool
            engine = sqlalchemy.create_engine(parsed, **options)
        else:
            options = {}
            if backend == "postgresql":
                # Single statements (the hot path, reads) then cost one round trip; the store begins its
                # write transactions explicitly, and migrations switch a connection back to READ COMMITTED.
                options["isolation_level"] = "AUTOCOMMIT"
            engine = sqlalchemy.create_engine(
                parsed, echo=echo, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout,
                pool_recycle=pool_recycle, pool_pre_ping=pool_pre_ping, **options)
    except (NoSuchModuleError, ImportError) as error:
        raise _no_driver(parsed.drivername, error) from None
    except (ArgumentError, TypeError, ValueError) as error:
        raise InvalidInput("url", str(error)) from None
    if getattr(engine.dialect, "is_async", False):
        engine.dispose()
        raise InvalidInput("url", f"{parsed.drivername!r} is an asyncio driver: open it with "
                                  f"sessionflow.AsyncSessionManager ({ASYNCIO_EXTRA}); SessionManager and the "
                                  "command line take a synchronous driver, such as postgresql+psycopg://")
    if backend == "sqlite":
        install_sqlite_pragmas(engine, synchronous=sqlite_synchronous, busy_timeout_ms=int(sqlite_busy_timeout * 1000))
    return engine


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise InvalidInput("url", f"not a database URL: {error}") from None


def _no_driver(drivername: str, error: BaseException) -> InvalidInput:
    """The error for a URL whose driver cannot be loaded; a missing greenlet names sessionflow's extra."""
    if "greenlet" in str(error):
        return InvalidInput("url", f"{drivername!r} needs SQLAlchemy's asyncio support: {ASYNCIO_EXTRA}")
    return InvalidInput("url", f"no driver for {drivername!r}: {error}")


def _cannot_prepare(error: SQLAlchemyError) -> StoreError:
    return StoreError(f"cannot prepare the database: {getattr(error, 'orig', None) or error}")


def open_sql(url: str, *, migrate: bool = True, cache_size: int = 10_000, retries: int | None = None,
             **engine_options: Any) -> SqlAlchemyEventStore:
    """The factory of the ``sqlite`` and ``postgresql`` schemes: a :class:`SqlAlchemyEventStore` on an engine of
    :func:`create_engine` (``engine_options``: its options), its schema brought up to date unless
    ``migrate=False``; ``retries``: reconnections after a lost connection (default 4). Raises
    :class:`~sessionflow.errors.StoreError` if the database is unreachable."""
    engine = create_engine(url, **engine_options)
    try:
        if migrate:
            from sessionflow.adapters.sqlalchemy.migrations import upgrade  # Alembic only when migrating

            upgrade(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise _cannot_prepare(error) from error
    except BaseException:
        engine.dispose()
        raise
    return SqlAlchemyEventStore(engine, cache_size=cache_size, retries=DEFAULT_RETRIES if retries is None else retries,
                                autocommit_engine=engine.dialect.name == "postgresql")


async def open_postgres_async(url: str, *, migrate: bool = True, cache_size: int = 10_000,
                              retries: int | None = None, **engine_options: Any) -> EventStore:
    """PostgreSQL for the asyncio facade: an :class:`AsyncPostgresEventStore` on an autocommit async engine of
    psycopg 3 (``postgresql://`` and ``postgresql+psycopg://`` URLs), its schema brought up to date unless
    ``migrate=False`` — without blocking the loop."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sessionflow.adapters.aio import GreenletRunner
    from sessionflow.adapters.sqlalchemy.async_postgres import AsyncPostgresEventStore

    parsed = _parse(url)
    if parsed.drivername not in _POSTGRES_DRIVERS:
        raise InvalidInput("url", "PostgreSQL runs on psycopg 3: use a postgresql+psycopg:// URL")
    parsed = parsed.set(drivername="postgresql+psycopg")
    options = {k: v for k, v in engine_options.items() if not k.startswith("sqlite_")}
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_recycle", 1800)
    try:
        engine = create_async_engine(parsed, isolation_level="AUTOCOMMIT", **options)
    except (NoSuchModuleError, ImportError) as error:
        raise InvalidInput("url", f"no driver for {parsed.drivername!r}: {error}") from None
    except (ArgumentError, TypeError, ValueError) as error:
        raise InvalidInput("url", str(error)) from None
    runner = GreenletRunner()
    try:
        if migrate:
            from sessionflow.adapters.sqlalchemy.migrations import upgrade  # Alembic only when migrating

            await runner.run(upgrade, engine.sync_engine)
        return AsyncPostgresEventStore(engine, cache_size=cache_size,
                                       retries=DEFAULT_RETRIES if retries is None else retries)
    except SQLAlchemyError as error:
        await engine.dispose()
        raise _cannot_prepare(error) from error
    except BaseException:
        await engine.dispose()
        raise


def is_in_memory_url(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``,
    ``file::memory:``, any ``mode=memory``), which lives and dies with the process that opened it. A URL that
    does not parse is not judged here (opening the store reports it): ``False``."""
    if not url.lower().startswith("sqlite"):
        return False
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    mode = parsed.query.get("mode")
    modes = mode if isinstance(mode, tuple) else (mode,)
    return (database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
            or "memory" in modes)
