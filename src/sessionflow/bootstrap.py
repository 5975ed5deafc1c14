"""The one wiring place: builds engines, stores and managers from explicit arguments.

:class:`SessionManager` here is the public facade (``sessionflow.SessionManager``): the application's
:class:`~sessionflow.application.manager.ManagerCore` with the constructors that open a store
(:meth:`~SessionManager.open`, :meth:`~SessionManager.in_memory`, :meth:`~SessionManager.from_settings`) and the
default waker (:class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`). Nothing here reads the
environment; the CLI and the HTTP app do that and pass the values in.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self, TypeVar

import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore, install_sqlite_pragmas
from sessionflow.adapters.sqlalchemy.persistence import DEFAULT_RETRIES
from sessionflow.application import manager
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["DEFAULT_URL", "SessionManager", "build", "create_engine", "create_redis_store", "create_store",
           "from_settings", "is_redis_url"]

#: The embedded default: an SQLite file in the current directory.
DEFAULT_URL = "sqlite:///./sessionflow.db"

if TYPE_CHECKING:
    from pathlib import Path

    from sessionflow.application.ports import Waker
    from sessionflow.application.retention import Archive
    from sessionflow.application.watching import ChangeWatcher
    from sessionflow.settings import Settings


class SessionManager(manager.ManagerCore):
    """Drives sessions through their lifecycle: the facade embedding programs use.

    Build one from a store (``SessionManager(store, ...)``, the arguments of
    :class:`sessionflow.application.manager.ManagerCore`), or open one with :meth:`in_memory`,
    :meth:`open` or :meth:`from_settings`. :meth:`start_timeouts` without a waker starts an
    :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`, which also follows the store's change
    watcher: writes of other processes wake it (PostgreSQL's ``NOTIFY``; an SQLite file polled every
    :attr:`sqlite_watch_interval` seconds).
    """

    #: Seconds between two polls of an SQLite database file by the change watcher (``None``: no watcher, and
    #: other processes' deadlines wait for the safety-net sweep). Set it on the class or on a manager
    #: before the watcher is first needed.
    sqlite_watch_interval: float | None = 0.1
    _store_watcher: ChangeWatcher | None  # set by the first _new_watcher()

    @classmethod
    def in_memory(cls, **options: Any) -> Self:
        """A manager over a fresh :class:`~sessionflow.adapters.memory.InMemoryEventStore`."""
        from sessionflow.adapters.memory import InMemoryEventStore

        return cls(InMemoryEventStore(), **options)

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Self:
        """A manager over a durable store (default: ``sqlite:///./sessionflow.db``): a SQLAlchemy URL, or
        ``redis://host:port/db`` for the Redis store (the ``redis`` extra).

        The schema is brought up to date unless ``migrate=False``. Other options are those of the
        constructor plus the store's (``pool_size``, ``echo``, ``redis_prefix``, ``retries``, ...); see
        :func:`build`. A write whose connection is lost after it was sent and that cannot be looked up within
        ``retries`` reconnections raises :class:`~sessionflow.errors.OutcomeUnknown` (see ``docs/errors.md``).
        """
        return build(url, manager_class=cls, **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Self:
        """A manager configured by ``settings`` (database, timeouts, policies); see :func:`from_settings`.
        ``options`` override or add constructor arguments."""
        return from_settings(settings, manager_class=cls, **options)

    def _new_waker(self, cleanup_interval: timedelta) -> Waker:
        from sessionflow.adapters.apscheduler import ApschedulerWaker  # the scheduler only when asked for

        return ApschedulerWaker(cleanup_interval=cleanup_interval)

    def _new_archive(self, root: Path) -> Archive:
        """:meth:`purge`'s archive: JSONL files under ``root`` (:class:`~sessionflow.adapters.archive.JsonlArchive`)."""
        from sessionflow.adapters.archive import JsonlArchive

        return JsonlArchive(root)

    def _new_watcher(self) -> ChangeWatcher | None:
        """The change watcher of this manager's store, started: built on the first call and shared by every
        later one (the waker, feed consumers), stopped by :meth:`close`. ``None`` for a store without one (in
        memory, an in-memory SQLite database) and once the manager is closed."""
        with _WATCHER_LOCK:
            if getattr(self, "_store_watcher_closed", False):
                return None
            if hasattr(self, "_store_watcher"):
                return self._store_watcher
            watcher = None
            store = self.store
            if isinstance(store, SqlAlchemyEventStore):
                from sessionflow.adapters.sqlalchemy.notifications import watcher_for_engine

                watcher = watcher_for_engine(store.engine, sqlite_interval=self.sqlite_watch_interval)
            elif callable(make := getattr(store, "change_watcher", None)):  # the Redis store's pub/sub watcher
                watcher = make()
            self._store_watcher = watcher
            if watcher is not None:
                watcher.start()
            return watcher

    def close(self) -> None:
        """Stop the waker if running, stop the change watcher and release the store (if the manager owns
        it). Idempotent."""
        try:
            super().close()
        finally:
            with _WATCHER_LOCK:
                watcher = getattr(self, "_store_watcher", None)
                self._store_watcher = None
                self._store_watcher_closed = True
            if watcher is not None:
                watcher.stop()


_WATCHER_LOCK = threading.Lock()  # builds and stops the managers' change watchers, one at a time


M = TypeVar("M", bound=manager.ManagerCore)


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
    raw = url or DEFAULT_URL
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number
        raise InvalidInput("url", f"not a database URL: {error}") from None
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


#: What installs the asyncio support (SQLAlchemy's greenlet bridge).
ASYNCIO_EXTRA = "pip install 'sessionflow[asyncio]'"


def _no_driver(drivername: str, error: BaseException) -> InvalidInput:
    """The error for a URL whose driver cannot be loaded; a missing greenlet names sessionflow's extra."""
    if "greenlet" in str(error):
        return InvalidInput("url", f"{drivername!r} needs SQLAlchemy's asyncio support: {ASYNCIO_EXTRA}")
    return InvalidInput("url", f"no driver for {drivername!r}: {error}")


def create_store(url: str | None = None, *, migrate: bool = True, cache_size: int = 10_000,
                 retries: int = DEFAULT_RETRIES, **engine_options: Any) -> SqlAlchemyEventStore:
    """A :class:`SqlAlchemyEventStore` on ``url`` (default :data:`DEFAULT_URL`), schema brought up to date
    unless ``migrate=False``; ``retries``: reconnections after a lost connection (see the store). Raises
    :class:`~sessionflow.errors.StoreError` if the database is unreachable.
    """
    retries = check_retries(retries)
    engine = create_engine(url, **engine_options)
    try:
        if migrate:
            from sessionflow.adapters.sqlalchemy.migrations import upgrade  # Alembic only when migrating

            upgrade(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(f"cannot prepare the database: {getattr(error, 'orig', None) or error}") from error
    except BaseException:
        engine.dispose()
        raise
    return SqlAlchemyEventStore(engine, cache_size=cache_size, retries=retries,
                                autocommit_engine=engine.dialect.name == "postgresql")


def check_retries(retries: Any) -> int:
    """``retries`` checked: an integer from 0 to 100 (:class:`~sessionflow.errors.InvalidInput` otherwise)."""
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise InvalidInput("retries", f"must be an integer from 0 to 100, not {retries!r}")
    return retries


_ENGINE_OPTIONS = frozenset({"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "echo",
                             "sqlite_synchronous", "sqlite_busy_timeout"})


_REDIS_OPTIONS = frozenset({"redis_prefix", "redis_retries", "redis_socket_timeout", "redis_max_connections"})


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


def is_redis_url(url: str | None) -> bool:
    """Whether ``url`` names a Redis server (``redis://``, ``rediss://`` or ``unix://``) rather than a database."""
    return url is not None and url.split(":", 1)[0].lower() in ("redis", "rediss", "unix")


def create_redis_store(url: str, *, cache_size: int = 10_000, redis_prefix: str = "sessionflow:",
                       redis_retries: int = 6, redis_socket_timeout: float | None = 10.0,
                       redis_max_connections: int | None = None) -> Any:
    """A :class:`~sessionflow.adapters.redis.RedisEventStore` on ``url`` (the ``redis`` extra). Raises
    :class:`~sessionflow.errors.InvalidInput` without redis-py or for a malformed URL, and
    :class:`~sessionflow.errors.StoreError` if the server does not answer."""
    try:
        from sessionflow.adapters.redis import RedisEventStore
    except ImportError as error:
        raise InvalidInput("url", f"the Redis store needs redis-py (pip install 'sessionflow[redis]'): {error}"
                           ) from None
    try:
        return RedisEventStore.from_url(url, prefix=redis_prefix, cache_size=cache_size, retries=redis_retries,
                                        socket_timeout=redis_socket_timeout, max_connections=redis_max_connections)
    except (ValueError, TypeError) as error:
        # redis-py's message may quote a piece of a URL it misread: not when the URL carries credentials
        detail = f": {error}" if "@" not in url else (
            " (redis://[user:password@]host[:port][/db]; a password's / @ : % are written percent-encoded)")
        raise InvalidInput("url", f"not a Redis URL{detail}") from None


def build(url: str | None = None, *, manager_class: type[M] = SessionManager,  # type: ignore[assignment]
          migrate: bool = True, cache_size: int = 10_000, retries: int | None = None, **options: Any) -> M:
    """A manager over a durable store on ``url``: engine options go to :func:`create_engine`, the rest to
    the manager's constructor. ``retries``: how many times the store reconnects after a lost connection before
    an operation fails (default 4 on SQL, 6 on Redis; ``redis_retries`` is the Redis store's older name)."""
    engine_options = {k: options.pop(k) for k in list(options) if k in _ENGINE_OPTIONS}
    store: Any
    if is_redis_url(url):  # redis://, rediss://, unix://: the Redis store (nothing to migrate)
        redis_options = {k: options.pop(k) for k in list(options) if k in _REDIS_OPTIONS}
        if retries is not None:
            redis_options["redis_retries"] = check_retries(retries)
        store = create_redis_store(str(url), cache_size=cache_size, **redis_options)
    else:
        store = create_store(url, migrate=migrate, cache_size=cache_size,
                             retries=DEFAULT_RETRIES if retries is None else retries, **engine_options)
    try:
        return manager_class(store, **options)
    except BaseException:
        store.close()
        raise


def from_settings(settings: Settings, *, manager_class: type[M] = SessionManager,  # type: ignore[assignment]
                  **options: Any) -> M:
    """A manager configured by ``settings``: its database, timeouts and policies, with an (unstarted)
    :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` sweeping every
    ``settings.session.cleanup_interval_seconds``; call ``start_timeouts()`` to start it.

    ``options`` override the settings or add to them (``clock``, ``migrate``, engine options, ``waker``...).
    Reads nothing from the environment: build ``settings`` with ``Settings.from_env()`` in an entry point.
    """
    from sessionflow.adapters.apscheduler import ApschedulerWaker

    merged: dict[str, Any] = settings.manager_options()
    merged.update(options)
    if "waker" not in merged:
        merged["waker"] = ApschedulerWaker(cleanup_interval=settings.session.cleanup_interval)
    return build(settings.database_url, manager_class=manager_class, **merged)
