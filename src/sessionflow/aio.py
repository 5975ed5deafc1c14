"""The asyncio wiring: :class:`AsyncSessionManager` (``sessionflow.AsyncSessionManager``) with the constructors
that open a store and its default runner and waker.

* ``AsyncSessionManager.in_memory(**options)``: an in-memory store, run on the loop's thread (it does no I/O).
* ``AsyncSessionManager.open(url, **options)``: PostgreSQL (``postgresql+psycopg://``) on psycopg 3's asyncio
  driver — an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` and the
  :class:`~sessionflow.adapters.sqlalchemy.async_postgres.AsyncPostgresEventStore`, run in greenlets on the
  loop's thread; SQLite (and any other synchronous SQLAlchemy URL) on the synchronous store, run on one
  dedicated worker thread (:class:`~sessionflow.adapters.aio.ThreadRunner`), where ``sqlite3`` keeps its
  fastest path and its lock waits off the loop. The schema is brought up to date first unless
  ``migrate=False`` — without blocking the loop either.
* ``start_timeouts()`` without a waker starts an :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` on an
  ``AsyncIOScheduler`` of the running loop. It follows the store's change watcher (PostgreSQL's ``LISTEN``; an
  SQLite file's ``data_version``, see :mod:`sessionflow.adapters.sqlalchemy.notifications`), as the feed's
  consumers do: other processes' deadlines and events wake them at once.

Nothing here reads the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from sessionflow.adapters.aio import GreenletRunner, ThreadRunner
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.adapters.sqlalchemy.persistence import DEFAULT_RETRIES
from sessionflow.application import async_manager
from sessionflow.application.ports import EventStore, Waker
from sessionflow.bootstrap import DEFAULT_URL, check_retries, create_redis_store, create_store, is_redis_url
from sessionflow.errors import InvalidInput, StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from sessionflow.application.retention import Archive
    from sessionflow.settings import Settings

__all__ = ["AsyncSessionManager", "Opening"]

M = TypeVar("M", bound="AsyncSessionManager")

_ENGINE_OPTIONS = frozenset({"pool_size", "max_overflow", "pool_timeout", "pool_recycle", "pool_pre_ping", "echo",
                             "sqlite_synchronous", "sqlite_busy_timeout"})
_POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg", "postgresql+psycopg_async"})


class Opening(Generic[M]):
    """A manager being opened: ``await`` it for the manager, or use it with ``async with`` (which closes the
    manager on leaving)."""

    __slots__ = ("_manager", "_open")

    def __init__(self, open_: Callable[[], Awaitable[M]]) -> None:
        self._open = open_
        self._manager: M | None = None

    def __await__(self) -> Generator[Any, None, M]:
        return self._open().__await__()

    async def __aenter__(self) -> M:
        self._manager = await self._open()
        return self._manager

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._manager is not None:
            await self._manager.close()


class AsyncSessionManager(async_manager.AsyncManagerCore):
    """Drives sessions through their lifecycle from asyncio code: every method of
    :class:`sessionflow.SessionManager` as a coroutine, with the same errors, policies, lifecycles,
    subscribers and timeouts.

    Build one from a store (``AsyncSessionManager(store, ...)``, the arguments of
    :class:`sessionflow.application.async_manager.AsyncManagerCore`), or open one with :meth:`in_memory` or
    :meth:`open`::

        async with AsyncSessionManager.open("postgresql+psycopg://app@db/sessions") as mgr:
            s = await mgr.create(user_id="u1", performer_id="u1")
    """

    @classmethod
    def in_memory(cls, **options: Any) -> Self:
        """A manager over a fresh :class:`~sessionflow.adapters.memory.InMemoryEventStore` (nothing to await)."""
        return cls(InMemoryEventStore(), **options)

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Opening[Self]:
        """A manager over a durable SQL store (default: ``sqlite:///./sessionflow.db``): ``await`` it, or
        ``async with`` it.

        ``postgresql+psycopg://`` (or ``postgresql://``) runs on psycopg's asyncio driver; other URLs on the
        synchronous store in a worker thread. The schema is brought up to date unless ``migrate=False``.
        Options: those of the constructor, the store's ``cache_size`` and ``retries`` (reconnections after a
        lost connection, see :meth:`sessionflow.SessionManager.open`), and the engine's (``pool_size``,
        ``max_overflow``, ``pool_timeout``, ``pool_recycle``, ``pool_pre_ping``, ``echo``,
        ``sqlite_synchronous``, ``sqlite_busy_timeout``). Raises :class:`~sessionflow.errors.InvalidInput` for a
        malformed URL and :class:`~sessionflow.errors.StoreError` when the database cannot be prepared.
        """
        return Opening(lambda: cls._open(url, options))

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Opening[Self]:
        """A manager configured by ``settings`` (database, timeouts, policies), as
        :meth:`sessionflow.SessionManager.from_settings`: ``await`` it or ``async with`` it. Its (unstarted)
        waker sweeps every ``settings.session.cleanup_interval_seconds`` once :meth:`start_timeouts` is
        awaited. ``options`` override the settings or add constructor arguments."""
        merged: dict[str, Any] = settings.manager_options()
        merged.update(options)
        cleanup = settings.session.cleanup_interval

        async def open_() -> Self:
            if "waker" not in merged:
                merged["waker"] = _asyncio_waker(asyncio.get_running_loop(), cleanup)
            return await cls._open(settings.database_url, merged)

        return Opening(open_)

    @classmethod
    async def _open(cls, url: str | None, options: dict[str, Any]) -> Self:
        options = dict(options)
        engine_options = {k: options.pop(k) for k in list(options) if k in _ENGINE_OPTIONS}
        migrate = bool(options.pop("migrate", True))
        cache_size = options.pop("cache_size", 10_000)
        retries = options.pop("retries", None)
        if retries is not None:
            retries = check_retries(retries)
        raw = url or DEFAULT_URL
        if is_redis_url(raw):  # the synchronous Redis store, on a worker thread
            redis_options = {k: options.pop(k) for k in list(options) if k.startswith("redis_")}
            if retries is not None:
                redis_options["redis_retries"] = retries
            return await cls._on_thread(lambda: create_redis_store(raw, cache_size=cache_size, **redis_options),
                                        options)
        try:
            parsed = make_url(raw)
        except ArgumentError as error:
            raise InvalidInput("url", f"not a database URL: {error}") from None
        if parsed.get_backend_name() == "postgresql":
            if parsed.drivername not in _POSTGRES_DRIVERS:
                raise InvalidInput("url", "PostgreSQL runs on psycopg 3: use a postgresql+psycopg:// URL")
            store: EventStore = await _postgres_store(parsed.set(drivername="postgresql+psycopg"), migrate,
                                                      cache_size, engine_options,
                                                      DEFAULT_RETRIES if retries is None else retries)
            runner: Any = GreenletRunner()
        else:
            sql_retries = DEFAULT_RETRIES if retries is None else retries
            return await cls._on_thread(
                lambda: create_store(raw, migrate=migrate, cache_size=cache_size, retries=sql_retries,
                                     **engine_options), options)
        return await cls._manager(store, runner, options)

    @classmethod
    async def _on_thread(cls, open_store: Callable[[], EventStore], options: dict[str, Any]) -> Self:
        """A manager over the synchronous store ``open_store`` makes, run on a worker thread of its own."""
        runner = ThreadRunner()
        try:
            store = await runner.run(open_store)
        except BaseException:
            await runner.aclose()
            raise
        return await cls._manager(store, runner, options)

    @classmethod
    async def _manager(cls, store: EventStore, runner: Any, options: dict[str, Any]) -> Self:
        try:
            manager = cls(store, runner=runner, **options)
        except BaseException:
            await runner.run(store.close)
            await runner.aclose()
            raise
        manager._owns_runner = True
        return manager

    def _default_runner(self, store: EventStore) -> async_manager.Runner:
        """On the loop's thread for a store whose I/O awaits (or that has none); else a worker thread."""
        if getattr(store, "awaits_io", False) or isinstance(store, InMemoryEventStore):
            return GreenletRunner()
        return ThreadRunner()

    #: Seconds between two polls of an SQLite database file by the change watcher (``None``: no watcher).
    sqlite_watch_interval: float | None = 0.1

    def _new_watcher(self) -> Any:
        """The change watcher of this manager's store, started on the first call and shared by the waker and
        the feed's consumers; stopped by :meth:`close`. ``None`` for a store without one and once closed."""
        if self.closed:
            return None
        if not hasattr(self, "_store_watcher"):
            from sessionflow.adapters.sqlalchemy import SqlAlchemyEventStore
            from sessionflow.adapters.sqlalchemy.notifications import watcher_for_engine

            store = self.store
            watcher = None
            if isinstance(store, SqlAlchemyEventStore):
                watcher = watcher_for_engine(store.engine, sqlite_interval=self.sqlite_watch_interval)
            elif callable(make := getattr(store, "change_watcher", None)):  # the Redis store's pub/sub watcher
                watcher = make()
            if watcher is not None:
                watcher.start()
            self._store_watcher = watcher
        return self._store_watcher

    async def close(self) -> None:
        """Stop the waker, the change watcher and release the store (if the manager owns it). Idempotent."""
        try:
            await super().close()
        finally:
            watcher = getattr(self, "_store_watcher", None)
            self._store_watcher = None
            if watcher is not None:
                await asyncio.to_thread(watcher.stop)  # joins the watcher's thread: off the loop

    def _new_waker(self, cleanup_interval: timedelta, loop: asyncio.AbstractEventLoop) -> Waker:
        return _asyncio_waker(loop, cleanup_interval)

    # ------------------------------------------------------------------ maintenance

    def _new_archive(self, root: Path) -> Archive:
        """:meth:`purge`'s archive: JSONL files under ``root`` (:class:`~sessionflow.adapters.archive.JsonlArchive`)."""
        from sessionflow.adapters.archive import JsonlArchive

        return JsonlArchive(root)


def _asyncio_waker(loop: asyncio.AbstractEventLoop, cleanup_interval: timedelta) -> Waker:
    """An :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` on an ``AsyncIOScheduler`` of ``loop``."""
    from sessionflow.adapters.apscheduler import ApschedulerWaker  # the scheduler only when asked for

    return ApschedulerWaker.for_asyncio(event_loop=loop, cleanup_interval=cleanup_interval)


async def _postgres_store(url: Any, migrate: bool, cache_size: int, engine_options: dict[str, Any],
                          retries: int) -> EventStore:
    """An :class:`AsyncPostgresEventStore` on an autocommit async engine, its schema brought up to date."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sessionflow.adapters.sqlalchemy.async_postgres import AsyncPostgresEventStore

    options = {k: v for k, v in engine_options.items() if not k.startswith("sqlite_")}
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_recycle", 1800)
    try:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT", **options)
    except (NoSuchModuleError, ImportError) as error:
        raise InvalidInput("url", f"no driver for {url.drivername!r}: {error}") from None
    except (ArgumentError, TypeError, ValueError) as error:
        raise InvalidInput("url", str(error)) from None
    runner = GreenletRunner()
    try:
        if migrate:
            from sessionflow.adapters.sqlalchemy.migrations import upgrade  # Alembic only when migrating

            await runner.run(upgrade, engine.sync_engine)
        return AsyncPostgresEventStore(engine, cache_size=cache_size, retries=retries)
    except SQLAlchemyError as error:
        await engine.dispose()
        raise StoreError(f"cannot prepare the database: {getattr(error, 'orig', None) or error}") from error
    except BaseException:
        await engine.dispose()
        raise
