"""The asyncio wiring: :class:`AsyncSessionManager` (``sessionflow.AsyncSessionManager``) with the constructors
that open a store and its default runner and waker.

* ``AsyncSessionManager.in_memory(**options)``: an in-memory store, run on the loop's thread (it does no I/O).
* ``AsyncSessionManager.open(url, **options)``: PostgreSQL (``postgresql+psycopg://``) on psycopg 3's asyncio
  driver — an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` and the
  :class:`~sessionflow.adapters.sqlalchemy.async_postgres.AsyncPostgresEventStore`, run in greenlets on the
  loop's thread; SQLite, Redis and a backend package's store (any store whose I/O blocks) on the synchronous
  store, run on one dedicated worker thread (:class:`~sessionflow.adapters.aio.ThreadRunner`), where
  ``sqlite3`` keeps its fastest path and its lock waits off the loop. The schema is brought up to date first
  unless ``migrate=False`` — without blocking the loop either. The store is opened by the wiring the
  synchronous facade shares (:mod:`sessionflow.stores.wiring`).
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

from sessionflow.adapters import log_fields
from sessionflow.adapters.memory import InMemoryEventStore
from sessionflow.application import async_manager
from sessionflow.application.ports import EventStore, Waker
from sessionflow.stores.wiring import FacadeWiring, plan, runner_for, settings_options

if TYPE_CHECKING:
    from uuid import UUID

    from sessionflow.diagram import SessionDiagram
    from sessionflow.settings import Settings

__all__ = ["AsyncSessionManager", "Opening"]

log_fields.install()  # sessionflow's log records carry the session, record, trace and span ids

M = TypeVar("M", bound="AsyncSessionManager")


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


class AsyncSessionManager(FacadeWiring, async_manager.AsyncManagerCore):
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
        """A manager over a durable store (default: ``sqlite:///./sessionflow.db``): ``await`` it, or
        ``async with`` it. The URLs are those of :meth:`sessionflow.SessionManager.open`.

        ``postgresql+psycopg://`` (or ``postgresql://``) runs on psycopg's asyncio driver; other URLs (SQLite,
        Redis, a backend package's scheme) on the synchronous store in a worker thread, unless the store declares
        that its I/O awaits the loop (:class:`~sessionflow.application.ports.AwaitsIO`). The schema is brought up
        to date unless ``migrate=False``. Options: those of the constructor, the store's ``cache_size`` and
        ``retries`` (reconnections after a lost connection, see :meth:`sessionflow.SessionManager.open`), the
        engine's (``pool_size``, ``max_overflow``, ``pool_timeout``, ``pool_recycle``, ``pool_pre_ping``,
        ``echo``, ``sqlite_synchronous``, ``sqlite_busy_timeout``) and the Redis store's (``redis_…``). Raises
        :class:`~sessionflow.errors.InvalidInput` for a malformed URL or an unknown scheme and
        :class:`~sessionflow.errors.StoreError` when the database cannot be prepared.
        """
        return Opening(lambda: cls._open(url, options))

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Opening[Self]:
        """A manager configured by ``settings`` (database, timeouts, policies), as
        :meth:`sessionflow.SessionManager.from_settings`: ``await`` it or ``async with`` it. Its (unstarted)
        waker sweeps every ``settings.session.cleanup_interval_seconds`` once :meth:`start_timeouts` is
        awaited. ``options`` override the settings or add constructor arguments."""
        merged = settings_options(settings, options)
        cleanup = settings.session.cleanup_interval

        async def open_() -> Self:
            if "waker" not in merged:
                merged["waker"] = _asyncio_waker(asyncio.get_running_loop(), cleanup)
            return await cls._open(settings.database_url, merged)

        return Opening(open_)

    @classmethod
    async def _open(cls, url: str | None, options: dict[str, Any]) -> Self:
        opening = plan(url, options)
        store, runner = await opening.open_for_asyncio()
        try:
            manager = cls(store, runner=runner, **opening.manager_options)
        except BaseException:
            await runner.run(store.close)
            await runner.aclose()
            raise
        manager._owns_runner = True
        return manager

    def _default_runner(self, store: EventStore) -> async_manager.Runner:
        """On the loop's thread for a store whose I/O awaits (or that has none); else a worker thread."""
        return runner_for(store)

    async def close(self) -> None:
        """Stop the waker, the change watcher and release the store (if the manager owns it). Idempotent."""
        try:
            await super().close()
        finally:
            watcher = self._release_watcher()
            if watcher is not None:
                await asyncio.to_thread(watcher.stop)  # joins the watcher's thread: off the loop

    async def diagram(self, session_id: UUID | str, *, format: str = "svg") -> SessionDiagram:
        """The session drawn on its lifecycle, its current state and path marked (see
        ``SessionManager.diagram``); Graphviz runs on a worker thread."""
        from sessionflow.application.validation import check_choice
        from sessionflow.diagram import SESSION_FORMATS, session_diagram

        check_choice(format, "format", SESSION_FORMATS)
        session = await self.get(session_id)
        machine = self.registry.get(session.lifecycle, session.lifecycle_version).machine
        events = await self.history(session.id)
        return await asyncio.to_thread(session_diagram, machine, session.status, events, format)

    def _new_waker(self, cleanup_interval: timedelta, loop: asyncio.AbstractEventLoop) -> Waker:
        return _asyncio_waker(loop, cleanup_interval)


def _asyncio_waker(loop: asyncio.AbstractEventLoop, cleanup_interval: timedelta) -> Waker:
    """An :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` on an ``AsyncIOScheduler`` of ``loop``."""
    from sessionflow.adapters.apscheduler import ApschedulerWaker  # the scheduler only when asked for

    return ApschedulerWaker.for_asyncio(event_loop=loop, cleanup_interval=cleanup_interval)
