"""The wiring both facades share: a store opened from a URL and options, its runner, its change watcher and
purge's archive.

:class:`sessionflow.SessionManager` (``bootstrap.py``) and :class:`sessionflow.AsyncSessionManager` (``aio.py``)
open stores only through :func:`plan`: the URL's backend comes from the registry (:mod:`sessionflow.stores`),
the options are split between the store's factory and the manager's constructor, and the store is opened
synchronously (:meth:`StorePlan.open`) or for an event loop (:meth:`StorePlan.open_for_asyncio`). Both mix in
:class:`FacadeWiring` (the store's change watcher, purge's archive) and take the options of ``from_settings``
from :func:`settings_options`. A new backend therefore needs no change here, nor in either facade.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sessionflow.application.ports import AwaitsIO, EventStore, WatchesChanges
from sessionflow.errors import InvalidInput
from sessionflow.stores import COMMON_OPTIONS, Backend, backend_for
from sessionflow.stores.sql import DEFAULT_URL

if TYPE_CHECKING:
    from pathlib import Path

    from sessionflow.adapters.aio import GreenletRunner, ThreadRunner
    from sessionflow.application.retention import Archive
    from sessionflow.application.watching import ChangeWatcher
    from sessionflow.settings import Settings

__all__ = ["FacadeWiring", "SharedWatcher", "StorePlan", "check_retries", "new_archive", "new_watcher", "plan",
           "runner_for", "settings_options", "shared_watcher"]


def check_retries(retries: Any) -> int:
    """``retries`` checked: an integer from 0 to 100 (:class:`~sessionflow.errors.InvalidInput` otherwise)."""
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise InvalidInput("retries", f"must be an integer from 0 to 100, not {retries!r}")
    return retries


class StorePlan(NamedTuple):
    """A store about to be opened: the ``url``, its ``backend``, the options for the backend's factory, and the
    rest of the options (the manager's constructor's)."""

    url: str
    backend: Backend
    store_options: dict[str, Any]
    manager_options: dict[str, Any]

    def open(self) -> EventStore:
        """The store, opened by the backend's factory."""
        return self.backend.factory(self.url, **self.store_options)

    async def open_for_asyncio(self) -> tuple[EventStore, GreenletRunner | ThreadRunner]:
        """The store and the runner the asyncio facade calls it through: PostgreSQL on psycopg's asyncio driver
        in greenlets on the loop's thread; any other store opened (and then called) on a worker thread of its
        own, unless it declares that its I/O awaits the loop (:class:`~sessionflow.application.ports.AwaitsIO`).
        """
        from sessionflow.adapters.aio import GreenletRunner, ThreadRunner

        if self.backend.open_async is not None:
            return await self.backend.open_async(self.url, **self.store_options), GreenletRunner()
        runner = ThreadRunner()
        try:
            store = await runner.run(self.open)
        except BaseException:
            await runner.aclose()
            raise
        if not _awaits_io(store):
            return store, runner
        await runner.aclose()
        return store, GreenletRunner()


def plan(url: str | None, options: Mapping[str, Any]) -> StorePlan:
    """How to open the store of ``url`` (default :data:`~sessionflow.stores.sql.DEFAULT_URL`) with ``options``: the
    factory gets ``cache_size``, ``retries`` and ``migrate`` and the options its backend takes; the rest is
    left for the manager. Raises :class:`~sessionflow.errors.InvalidInput` for an unknown scheme or bad
    ``retries``, before anything is opened."""
    raw = url or DEFAULT_URL
    backend = backend_for(raw)
    rest = dict(options)
    retries = rest.pop("retries", None)
    store_options: dict[str, Any] = {"cache_size": rest.pop("cache_size", 10_000),
                                     "retries": None if retries is None else check_retries(retries),
                                     "migrate": bool(rest.pop("migrate", True))}
    for name in [name for name in rest if name in backend.options and name not in COMMON_OPTIONS]:
        store_options[name] = rest.pop(name)
    return StorePlan(raw, backend, store_options, rest)


def _awaits_io(store: EventStore) -> bool:
    return isinstance(store, AwaitsIO) and bool(store.awaits_io)


def runner_for(store: EventStore) -> GreenletRunner | ThreadRunner:
    """The runner the asyncio facade calls ``store`` through when none is given: the loop's thread (greenlets)
    for a store whose I/O awaits the loop or that does none (in memory); else a worker thread."""
    from sessionflow.adapters.aio import GreenletRunner, ThreadRunner
    from sessionflow.adapters.memory import InMemoryEventStore

    if _awaits_io(store) or isinstance(store, InMemoryEventStore):
        return GreenletRunner()
    return ThreadRunner()


def new_watcher(store: EventStore, poll_interval: float | None) -> ChangeWatcher | None:
    """A started change watcher of ``store``'s database (:class:`~sessionflow.application.ports.WatchesChanges`),
    or ``None`` for a store without one."""
    watcher = store.change_watcher(poll_interval=poll_interval) if isinstance(store, WatchesChanges) else None
    if watcher is not None:
        watcher.start()
    return watcher


class SharedWatcher:
    """The change watcher of one manager's store: built and started by the first :meth:`get`, the same one for
    every later call (the waker, the feed's consumers), handed back once by :meth:`close` for the facade to stop
    (at once, or off the event loop); ``None`` from then on."""

    __slots__ = ("_built", "_closed", "_lock", "_watcher")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watcher: ChangeWatcher | None = None
        self._built = False
        self._closed = False

    def get(self, store: EventStore, poll_interval: float | None) -> ChangeWatcher | None:
        """The watcher, built on the first call (``None``: the store has none, or the manager is closed)."""
        with self._lock:
            if not (self._built or self._closed):
                self._watcher = new_watcher(store, poll_interval)
                self._built = True
            return self._watcher

    def close(self) -> ChangeWatcher | None:
        """The watcher to stop (``None``: none was built); later calls of :meth:`get` return ``None``."""
        with self._lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
            return watcher


_SHARED_LOCK = threading.Lock()


class _Wired(Protocol):
    """What :class:`FacadeWiring` needs of the manager it is mixed into."""

    _closed: bool
    _shared_watcher: SharedWatcher | None
    sqlite_watch_interval: float | None

    @property
    def store(self) -> EventStore: ...


def shared_watcher(manager: _Wired) -> SharedWatcher:
    """The :class:`SharedWatcher` of ``manager`` (kept in its ``_shared_watcher`` attribute, made once)."""
    with _SHARED_LOCK:
        found = manager._shared_watcher
        if found is None:
            found = manager._shared_watcher = SharedWatcher()
        return found


def new_archive(root: Path) -> Archive:
    """Purge's archive: JSONL files under ``root`` (:class:`~sessionflow.adapters.archive.JsonlArchive`)."""
    from sessionflow.adapters.archive import JsonlArchive

    return JsonlArchive(root)


class FacadeWiring:
    """What both facades (:class:`sessionflow.SessionManager`, :class:`sessionflow.AsyncSessionManager`) build
    from their store the same way, mixed in before the application's manager: the store's change watcher
    (built once, shared, handed back by :meth:`_release_watcher` when the facade closes) and purge's archive."""

    #: Seconds between two polls of an SQLite database file by the change watcher (``None``: no watcher, and
    #: other processes' deadlines wait for the safety-net sweep). Set it on the class or on a manager
    #: before the watcher is first needed.
    sqlite_watch_interval: float | None = 0.1
    _shared_watcher: SharedWatcher | None = None  # made by the first _new_watcher()

    def _new_watcher(self: _Wired) -> ChangeWatcher | None:
        """The change watcher of this manager's store (:class:`~sessionflow.application.ports.WatchesChanges`),
        started: built on the first call and shared by every later one (the waker, the feed's consumers),
        stopped when the manager closes. ``None`` for a store without one (in memory, an in-memory SQLite
        database) and once the manager is closed or closing."""
        if self._closed:
            return None
        return shared_watcher(self).get(self.store, self.sqlite_watch_interval)

    def _release_watcher(self: _Wired) -> ChangeWatcher | None:
        """The watcher for the closing facade to stop (``None``: none was built); none is built from now on."""
        return shared_watcher(self).close()

    def _new_archive(self, root: Path) -> Archive:
        """:meth:`purge`'s archive: JSONL files under ``root`` (:class:`~sessionflow.adapters.archive.JsonlArchive`)."""
        return new_archive(root)


def settings_options(settings: Settings, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of a manager configured by ``settings`` (``settings.manager_options()``: the database's,
    the timeouts', the policies'), overridden or completed by ``options``; ``from_settings`` of either facade
    adds its default waker when there is no ``waker``."""
    merged: dict[str, Any] = settings.manager_options()
    merged.update(options)
    return merged
