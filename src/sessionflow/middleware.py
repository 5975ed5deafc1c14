"""Expiry sweeps driven by a host web application's own traffic: :class:`SessionCleanupMiddleware` (ASGI:
Starlette, FastAPI, ...) and :class:`SessionCleanupWSGIMiddleware` (WSGI: Flask, Django, ...).

For an application that embeds a manager but runs neither ``sessionflow worker`` nor ``start_timeouts()``:
each request checks, in a few hundred nanoseconds, whether ``cleanup_interval`` has passed since the last
sweep (by the manager's clock, so frozen and advanced time in tests move it); if it has, one sweep of at most
``max_sessions`` overdue sessions starts in the background — a daemon thread, or a task on the running event
loop for an :class:`~sessionflow.AsyncSessionManager` — and the request goes on at once: a slow sweep never
delays a response. At most one sweep runs at a time per manager in a process (however many middlewares wrap
it); sweeps of several processes may overlap, and each overdue session still gets exactly one ``expired``
event (the store's compare-and-set). Reads never report a session as live past its deadline anyway; the sweep
records the expiry and calls the subscribers. What each sweep did is logged at DEBUG on ``sessionflow.cleanup``.

No web framework is imported: both classes speak the bare ASGI 3 and WSGI (PEP 3333) protocols. See
``docs/timeouts.md`` for when to use this, the worker or the waker.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from datetime import datetime, timedelta
from typing import Any, Final

from sessionflow.errors import InvalidInput

__all__ = ["DEFAULT_CLEANUP_INTERVAL", "MIN_CLEANUP_INTERVAL", "SessionCleanupMiddleware",
           "SessionCleanupWSGIMiddleware", "TrafficSweeper"]

logger = logging.getLogger("sessionflow.cleanup")

#: The default time between two sweeps, in seconds (the settings' ``cleanup_interval_seconds`` default).
DEFAULT_CLEANUP_INTERVAL: Final = 300.0
#: The shortest interval allowed, in seconds (the settings' minimum).
MIN_CLEANUP_INTERVAL: Final = 30.0

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ManagerState:
    """What the sweepers of one manager share in this process: the time of the last sweep, the lock that lets
    one sweep run at a time."""

    __slots__ = ("last", "lock", "running")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: datetime | None = None
        self.running = False


_STATES: weakref.WeakKeyDictionary[Any, _ManagerState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state_of(manager: Any) -> _ManagerState:
    with _STATES_LOCK:
        state = _STATES.get(manager)
        if state is None:
            state = _STATES[manager] = _ManagerState()
        return state


class TrafficSweeper:
    """Starts a background sweep of ``manager`` when :meth:`poke`'d and ``cleanup_interval`` has passed since the
    last one (the first poke sweeps at once); what both middlewares use.

    Args:
        manager: a :class:`~sessionflow.SessionManager` or an :class:`~sessionflow.AsyncSessionManager` (whose
            sweep runs as a task on the event loop that pokes).
        cleanup_interval: seconds (or a ``timedelta``) between two sweeps, at least
            :data:`MIN_CLEANUP_INTERVAL`; default :data:`DEFAULT_CLEANUP_INTERVAL`.
        max_sessions: the most sessions one sweep expires (it stops after the batch that reaches it; the rest
            waits for the next one).
        batch_size: sessions per transaction.

    Raises :class:`~sessionflow.errors.InvalidInput` for an interval below the minimum or a bad bound.
    """

    def __init__(self, manager: Any, *, cleanup_interval: float | timedelta = DEFAULT_CLEANUP_INTERVAL,
                 max_sessions: int = 10_000, batch_size: int = 1000) -> None:
        seconds = cleanup_interval.total_seconds() if isinstance(cleanup_interval, timedelta) else cleanup_interval
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
                MIN_CLEANUP_INTERVAL <= seconds <= 86_400 * 365):
            raise InvalidInput("cleanup_interval", f"must be at least {MIN_CLEANUP_INTERVAL:g} seconds "
                                                   f"(got {cleanup_interval!r})")
        for name, value in (("max_sessions", max_sessions), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(name, f"must be a positive integer (got {value!r})")
        sweep = getattr(manager, "sweep", None)
        if not callable(sweep) or not hasattr(manager, "clock"):
            raise InvalidInput("manager", "expected a SessionManager or an AsyncSessionManager")
        self.manager = manager
        self.interval = timedelta(seconds=seconds)
        self.max_sessions = max_sessions
        self.batch_size = batch_size
        self._async = inspect.iscoroutinefunction(sweep)
        self._state = _state_of(manager)
        self._tasks: set[asyncio.Task[None]] = set()
        #: How many sweeps this sweeper started.
        self.started = 0

    def poke(self) -> bool:
        """Start a sweep in the background if one is due and none is running; whether one was started."""
        state = self._state
        now = self.manager.clock.now()
        last = state.last
        if state.running or (last is not None and now - last < self.interval):
            return False
        with state.lock:
            if state.running or (state.last is not None and now - state.last < self.interval):
                return False
            state.running = True
            state.last = now
        self.started += 1
        try:
            if self._async:
                task = asyncio.get_running_loop().create_task(self._sweep_async())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                threading.Thread(target=self._sweep, name="sessionflow-cleanup", daemon=True).start()
        except BaseException:
            state.running = False
            raise
        return True

    def _sweep(self) -> None:
        started = time.perf_counter()
        try:
            result = self.manager.sweep(batch_size=self.batch_size, limit=self.max_sessions)
            self._log(result, started)
        except Exception:  # a failed sweep is tried again at the next interval
            logger.warning("cleanup sweep failed; the next one runs after the interval", exc_info=True)
        finally:
            self._state.running = False

    async def _sweep_async(self) -> None:
        started = time.perf_counter()
        try:
            result = await self.manager.sweep(batch_size=self.batch_size, limit=self.max_sessions)
            self._log(result, started)
        except Exception:
            logger.warning("cleanup sweep failed; the next one runs after the interval", exc_info=True)
        finally:
            self._state.running = False

    @staticmethod
    def _log(result: Any, started: float) -> None:
        logger.debug("cleanup sweep: %d session(s) expired in %.3f s; next deadline %s", result.expired,
                     time.perf_counter() - started, result.next_deadline)


class SessionCleanupMiddleware:
    """ASGI middleware: every HTTP or WebSocket request pokes a :class:`TrafficSweeper` of ``manager``, then goes
    on unchanged (the sweep runs in the background). ``app.add_middleware(SessionCleanupMiddleware,
    manager=manager)`` in Starlette/FastAPI, or ``SessionCleanupMiddleware(app, manager)`` around any ASGI app.
    The keyword arguments are :class:`TrafficSweeper`'s."""

    def __init__(self, app: ASGIApp, manager: Any, **options: Any) -> None:
        self.app = app
        self.sweeper = TrafficSweeper(manager, **options)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope.get("type") in ("http", "websocket"):
            self.sweeper.poke()
        await self.app(scope, receive, send)


class SessionCleanupWSGIMiddleware:
    """WSGI middleware: every request pokes a :class:`TrafficSweeper` of ``manager`` (a synchronous
    :class:`~sessionflow.SessionManager`: the sweep runs in a daemon thread), then goes on unchanged. Flask:
    ``app.wsgi_app = SessionCleanupWSGIMiddleware(app.wsgi_app, manager)``; Django: wrap the
    ``application`` of ``wsgi.py``."""

    def __init__(self, app: WSGIApp, manager: Any, **options: Any) -> None:
        if inspect.iscoroutinefunction(getattr(manager, "sweep", None)):
            raise InvalidInput("manager", "a WSGI application needs a SessionManager, not an AsyncSessionManager")
        self.app = app
        self.sweeper = TrafficSweeper(manager, **options)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.sweeper.poke()
        return self.app(environ, start_response)
