"""The runners of :class:`sessionflow.AsyncSessionManager`: where the synchronous manager's work runs so that it
never blocks the event loop.

The asyncio facade reuses the whole synchronous write pipeline (validation, load, decide, append, delivery,
timeouts): each of its coroutines hands one call of the synchronous :class:`~sessionflow.SessionManager` to a
runner (the :class:`~sessionflow.application.async_manager.Runner` port) and awaits it.

* :class:`GreenletRunner` runs the call on the loop's own thread in a greenlet
  (:func:`sqlalchemy.util.greenlet_spawn`, the bridge SQLAlchemy's ``AsyncSession`` is built on). A store whose
  I/O awaits an asyncio driver (:class:`~sessionflow.adapters.sqlalchemy.async_postgres.AsyncPostgresEventStore`)
  suspends the greenlet at each driver call (``await_only``) and the loop runs other tasks meanwhile; a store
  without I/O (in memory) simply runs. Concurrent calls are interleaved tasks, so the manager's locks that are
  held across store I/O must be task-aware: :meth:`GreenletRunner.lock`.
* :class:`ThreadRunner` runs the call on a dedicated worker thread (``max_workers`` threads, one by default)
  and awaits its result: for stores whose driver blocks (SQLite's ``sqlite3``), which then keep their fastest
  path, their retry rules and their lock waits off the loop.

Both let the synchronous code wait for a coroutine on the loop (:meth:`wait`: an ``async def`` subscriber) and
tell whether the caller is inside one of their calls (:meth:`inside`). Both also run synchronous code on the loop's
own thread in a greenlet (:meth:`run_here`: a waker's start, which must create its scheduler on the running loop),
from where :meth:`join` hands calls of the manager to :meth:`run` and waits for them without blocking the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy.util import await_only, greenlet_spawn

from sessionflow.adapters._sqlalchemy_compat import in_greenlet

__all__ = ["GreenletRunner", "ThreadRunner"]

T = TypeVar("T")

#: Set (in the calling task's context) while :meth:`ThreadRunner.run_here` runs its function.
_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("sessionflow_run_here", default=False)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class GreenletRunner:
    """Runs synchronous calls on the event loop's thread, in greenlets whose I/O awaits the loop.

    Calls made while none is awaited (a store in memory) run to the end at once; a store on an asyncio driver
    yields to the loop at each round trip.
    """

    #: Calls are tasks interleaved on one thread (locks held across I/O must be task-aware).
    cooperative = True

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a greenlet on the running loop."""
        return await greenlet_spawn(fn, *args, **kwargs)

    def inside(self) -> bool:
        """True in a call of :meth:`run` (where :meth:`wait` may be used)."""
        return in_greenlet()

    def wait(self, awaitable: Awaitable[T]) -> T:
        """From inside :meth:`run`: wait for ``awaitable`` on the loop (the greenlet is suspended meanwhile)."""
        return await_only(_awaited(awaitable))

    async def run_here(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """As :meth:`run`: calls already run on the loop's thread."""
        return await greenlet_spawn(fn, *args, **kwargs)

    def here(self) -> bool:
        """True in a call of :meth:`run_here` (or of :meth:`run`: the same here)."""
        return in_greenlet()

    def join(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """From inside :meth:`run_here`: ``fn(*args, **kwargs)``, at once (it is a call of :meth:`run`)."""
        return fn(*args, **kwargs)

    def lock(self) -> AbstractContextManager[Any]:
        """A lock for code run by :meth:`run`: a task that finds it taken awaits it (an ``asyncio.Lock``)."""
        return _TaskLock()

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "GreenletRunner()"


class _TaskLock:
    """A lock for code run inside ``greenlet_spawn``: a task that finds it taken awaits it on the loop (an
    :class:`asyncio.Lock`, made on first use so that it belongs to the loop that uses it)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    def __enter__(self) -> bool:
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return await_only(lock.acquire())

    def __exit__(self, *exc_info: object) -> None:
        assert self._lock is not None
        self._lock.release()


class ThreadRunner:
    """Runs synchronous calls on dedicated worker threads (one by default) and awaits their results.

    A call that runs while every worker waits for the loop (an ``async def`` subscriber that calls the manager
    again) runs on a thread of its own instead of queueing behind them, so it can never wait for itself.
    """

    cooperative = False

    def __init__(self, max_workers: int = 1, *, name: str = "sessionflow-io") -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._local = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0  # workers waiting for the loop in wait()
        self._lock = threading.Lock()

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        local = self._local
        outer = getattr(local, "inside", False)
        local.inside = True
        try:
            return fn(*args, **kwargs)
        finally:
            local.inside = outer

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        # In the caller's context (its current span, its context variables), as asyncio.to_thread runs calls.
        call = functools.partial(contextvars.copy_context().run, self._call, fn, args, kwargs)
        if self._waiting:
            return await asyncio.to_thread(call)
        return await loop.run_in_executor(self._executor, call)

    def inside(self) -> bool:
        """True on a worker thread, in a call of :meth:`run`."""
        return bool(getattr(self._local, "inside", False))

    def wait(self, awaitable: Awaitable[T]) -> T:
        """From a worker thread: run ``awaitable`` on the loop and block this worker until it is done."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the runner has not run anything yet")
        with self._lock:
            self._waiting += 1
        try:
            return asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop).result()
        finally:
            with self._lock:
                self._waiting -= 1

    async def run_here(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the loop's own thread, in a greenlet from which :meth:`join` works."""
        return await greenlet_spawn(self._here, fn, args, kwargs)

    @staticmethod
    def _here(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        token = _HERE.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _HERE.reset(token)

    def here(self) -> bool:
        """True in a call of :meth:`run_here`."""
        return _HERE.get() and in_greenlet()

    def join(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """From inside :meth:`run_here`: ``fn(*args, **kwargs)`` on a worker thread; the loop runs meanwhile."""
        return await_only(self.run(fn, *args, **kwargs))

    def lock(self) -> AbstractContextManager[Any]:
        """A ``threading.Lock`` (calls run on threads)."""
        return threading.Lock()

    async def aclose(self) -> None:
        """Stop the worker threads once the calls queued are done."""
        await asyncio.to_thread(self._executor.shutdown, True)

    def __repr__(self) -> str:
        return f"ThreadRunner(max_workers={self._executor._max_workers})"
