"""What :class:`~sessionflow.application.async_manager.AsyncManagerCore` needs besides the synchronous
manager: the :class:`Runner` port, and the bridges of the waker and of the delivery to the event loop.

* :class:`Runner`: where the synchronous manager's calls run without blocking the loop (implemented in
  :mod:`sessionflow.adapters.aio`: on the loop's thread in greenlets, or on worker threads).
* :class:`LoopTarget`: what a waker drives (its ``sweep``, ``expire_sessions``, ``next_deadline``, ``clock``).
  A waker calls it from its own thread (an ``ApschedulerWaker`` sweeps on its one-thread executor): each call
  is then handed to the runner on the loop and waited for there; from the waker's start, which the facade runs
  on the loop's thread (``Runner.run_here``: its scheduler belongs to the running loop), through
  ``Runner.join``.
* :class:`UnboundWaker`: the waker as the synchronous manager sees it — told the deadlines of its commits, but
  neither bound, started nor stopped by it: the asyncio facade binds it to a :class:`LoopTarget`, starts it on the
  loop's thread, and stops it off the loop (stopping joins the waker's thread, which may be waiting for a sweep on
  the loop).
* :func:`task_aware_delivery`: on a cooperative runner, concurrent calls are tasks on one thread, so the
  per-session locks the delivery holds across a store append must make a task wait, not block the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sessionflow.application.manager import ManagerCore
from sessionflow.application.ports import Clock, Waker
from sessionflow.application.timeouts import SweepResult

__all__ = ["LoopTarget", "Runner", "UnboundWaker", "task_aware_delivery"]

T = TypeVar("T")

#: How often (seconds) a waker's thread waiting for a call on the loop checks that the loop still runs.
_CHECK_LOOP = 1.0


class Runner(Protocol):
    """Runs synchronous calls of the manager for the event loop, without blocking it."""

    #: True when calls run as tasks interleaved on the loop's thread (greenlets), false on worker threads.
    cooperative: bool

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` and return (or raise) what it does."""
        ...

    def inside(self) -> bool:
        """True when called from inside :meth:`run`."""
        ...

    def wait(self, awaitable: Awaitable[T]) -> T:
        """From inside :meth:`run`: wait for ``awaitable`` on the loop and return its result."""
        ...

    async def run_here(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the loop's own thread (where the running loop is known), so that it may
        call :meth:`join`."""
        ...

    def here(self) -> bool:
        """True when called from inside :meth:`run_here`."""
        ...

    def join(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """From inside :meth:`run_here`: run ``fn(*args, **kwargs)`` as :meth:`run` does and wait for it, the loop
        running meanwhile."""
        ...

    def lock(self) -> AbstractContextManager[Any]:
        """A mutual-exclusion lock for code run by :meth:`run`."""
        ...

    async def aclose(self) -> None:
        """Release the runner's resources (threads)."""
        ...


class LoopTarget:
    """What a waker drives for an asyncio manager: the synchronous manager's sweeps, run through the runner."""

    __slots__ = ("_manager", "_runner", "loop")

    def __init__(self, manager: ManagerCore, runner: Runner) -> None:
        self._manager = manager
        self._runner = runner
        #: The loop the manager's timeouts were started on.
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def clock(self) -> Clock:
        """The manager's clock (the waker arms its jobs by it)."""
        return self._manager.clock

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        runner = self._runner
        if runner.inside():
            return fn(*args, **kwargs)
        if runner.here():
            return runner.join(fn, *args, **kwargs)
        loop = self.loop
        if loop is None:
            raise RuntimeError("the timeouts were not started on an event loop")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("a waker must not call its target on the event loop's thread: it would block it")
        future = asyncio.run_coroutine_threadsafe(self._runner.run(fn, *args, **kwargs), loop)
        while True:
            try:
                return future.result(timeout=_CHECK_LOOP)
            except concurrent.futures.TimeoutError:
                if loop.is_closed() or not loop.is_running():  # the program ended without closing the manager
                    future.cancel()
                    raise RuntimeError("the event loop stopped before the call ran") from None

    def sweep(self, now: datetime | None = None, batch_size: int = 1000) -> SweepResult:
        """The manager's ``sweep``, run through the runner."""
        return self._run(self._manager.sweep, now, batch_size)

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        """The manager's ``expire_sessions``, run through the runner."""
        return self._run(self._manager.expire_sessions, now, batch_size)

    def next_deadline(self) -> datetime | None:
        """The manager's ``next_deadline``, run through the runner."""
        return self._run(self._manager.next_deadline)


class UnboundWaker:
    """``waker`` as the synchronous manager sees it: no ``bind`` (the facade binds it), and a ``start`` and a
    ``stop`` that do nothing (see the module's docstring)."""

    __slots__ = ("waker",)

    def __init__(self, waker: Waker) -> None:
        self.waker = waker

    def start(self) -> None:
        """Left to the facade (see the class docstring)."""

    def stop(self) -> None:
        """Left to the facade (see the class docstring)."""

    def notify_deadline(self, deadline: datetime) -> None:
        """Passed on to the waker."""
        self.waker.notify_deadline(deadline)


def task_aware_delivery(manager: ManagerCore, runner: Runner) -> None:
    """Give ``manager``'s delivery locks that make a task wait (see the module's docstring)."""
    manager._delivery.use_locks(runner.lock)
