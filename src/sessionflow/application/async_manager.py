"""``AsyncManagerCore``: the asyncio facade of :class:`~sessionflow.application.manager.ManagerCore`.

It holds a synchronous manager and runs each of its methods through a :class:`Runner` — on the loop's thread
in a greenlet whose I/O awaits an asyncio driver, or on a worker thread for a blocking driver (see
:mod:`sessionflow.adapters.aio`) — so the whole write pipeline, its validation, policies, lifecycles,
subscribers and timeouts are the synchronous manager's own, with the same typed errors, and never block the
event loop. Here: the construction, what it runs on, closing, and ``async def`` subscribers. Its coroutines live
in three parts, each a module of its own: the writes (:mod:`~sessionflow.application.async_writes`), the reads
and the feed, with ``async def`` feed handlers and the feed as an async iterator
(:mod:`~sessionflow.application.async_reads`), the timeouts and the maintenance, with the waker's bridge to the
loop (:mod:`~sessionflow.application.async_upkeep`); the call they all go through is
:mod:`~sessionflow.application.async_base`'s. The public class with the constructors that open a store
(``in_memory()``, ``open(url)``) is :class:`sessionflow.AsyncSessionManager`, its subclass in
:mod:`sessionflow.aio`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from sessionflow.application.async_reads import AsyncHandler, AsyncReads
from sessionflow.application.async_support import LoopTarget, Runner, UnboundWaker, task_aware_delivery
from sessionflow.application.async_upkeep import AsyncUpkeep
from sessionflow.application.async_writes import AsyncWrites
from sessionflow.application.delivery import Subscriber
from sessionflow.application.manager import ManagerCore
from sessionflow.application.ports import Clock, EventStore, Waker
from sessionflow.domain.deadlines import DeadlinePolicy
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import SessionEvent
from sessionflow.errors import InvalidInput

__all__ = ["AsyncHandler", "AsyncManagerCore", "Runner"]

T = TypeVar("T")
P = ParamSpec("P")


class AsyncManagerCore(AsyncWrites, AsyncReads, AsyncUpkeep):
    """Drives sessions through their lifecycle from asyncio code: every method of
    :class:`~sessionflow.application.manager.ManagerCore`, as a coroutine.

    Args:
        store: where events and sessions live (see :class:`sessionflow.AsyncSessionManager` for the stores it
            opens itself).
        runner: where the synchronous work runs (see :mod:`sessionflow.adapters.aio`); by default the one
            that fits ``store`` (:meth:`_default_runner`). A runner given here is not closed with the manager.
        waker: wakes the manager at deadlines once :meth:`start_timeouts` is awaited.
        options: the other arguments of :class:`~sessionflow.application.manager.ManagerCore`
            (``clock``, ``default_ttl``, ``sliding``, ``max_lifetime``, ``single_active_per_user``,
            ``enforce_owner``, ``owns_store``, ``lifecycle``, ``registry``).

    Use it from one event loop. ``async with`` closes it. Plain subscribers and handlers are called where the
    manager's work runs (for a store in memory or on PostgreSQL: on the loop's thread); ``async def`` ones are
    awaited on the loop, in order, before the call that committed the event returns.
    """

    #: The synchronous manager class the facade drives.
    _manager_class: type[ManagerCore] = ManagerCore

    def __init__(self, store: EventStore, *, runner: Runner | None = None, waker: Waker | None = None,
                 **options: Any) -> None:
        if options.get("group_commit"):
            raise InvalidInput("group_commit", "group commit shares the commits of threads; from asyncio, commit "
                                               "many changes at once with create_many() and send_many()")
        self._owns_runner = runner is None
        self._runner: Runner = runner if runner is not None else self._default_runner(store)
        self._sync = self._manager_class(store, **options)
        if self._runner.cooperative:
            task_aware_delivery(self._sync, self._runner)
        self._waker = waker
        self._proxy: UnboundWaker | None = None
        self._target = LoopTarget(self._sync, self._runner)
        self._closed = False
        self._timeouts_lock = asyncio.Lock()

    def _default_runner(self, store: EventStore) -> Runner:
        """The runner for ``store`` when none is given (here: none; :class:`sessionflow.AsyncSessionManager`
        picks one)."""
        raise InvalidInput("runner", "no runner given: pass one to the constructor")

    # ------------------------------------------------------------------ what it runs on

    @property
    def sync_manager(self) -> ManagerCore:
        """The synchronous manager doing the work. Call it only through :meth:`run_sync`."""
        return self._sync

    @property
    def runner(self) -> Runner:
        """Where the synchronous work runs."""
        return self._runner

    @property
    def store(self) -> EventStore:
        """The store. Call it only through :meth:`run_sync` (its I/O may need the runner)."""
        return self._sync.store

    @property
    def clock(self) -> Clock:
        """The manager's clock."""
        return self._sync.clock

    @property
    def default_ttl(self) -> timedelta:
        """Time-to-live of a session created without ``ttl``."""
        return self._sync.default_ttl

    @property
    def lifecycle(self) -> CompiledLifecycle:
        """The compiled decision table of the definition new sessions run under."""
        return self._sync.lifecycle

    @property
    def definition(self) -> LifecycleDefinition:
        """The lifecycle definition new sessions run under."""
        return self._sync.definition

    @property
    def registry(self) -> LifecycleRegistry:
        """Where the definitions of existing sessions are looked up."""
        return self._sync.registry

    @property
    def deadlines(self) -> DeadlinePolicy:
        """How deadlines move (sliding expiry, maximum lifetime)."""
        return self._sync.deadlines

    @property
    def single_active_per_user(self) -> bool:
        """Whether starting a session is refused while its user has another in progress."""
        return self._sync.single_active_per_user

    @property
    def enforce_owner(self) -> bool:
        """Whether a write to a session with a ``user_id`` must come from that user (or ``"system"``)."""
        return self._sync.enforce_owner

    @property
    def closed(self) -> bool:
        """True once :meth:`close` began."""
        return self._closed

    async def run_sync(self, fn: Callable[Concatenate[ManagerCore, P], T], /, *args: P.args,
                       **kwargs: P.kwargs) -> T:
        """Await ``fn(sync_manager, *args, **kwargs)`` run where the manager's work runs, so that ``fn`` may
        call the synchronous manager and its store (``lambda m: m.store.session_ids()``)."""
        return await self._call(fn, self._sync, *args, **kwargs)

    # ------------------------------------------------------------------ context manager

    async def __aenter__(self) -> Self:
        """``async with manager:`` closes it on leaving."""
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the waker if running and release the store (if the manager owns it). Idempotent."""
        if self._closed:
            return
        self._closed = True  # no new call from now on; a waker's sweep under way still finishes
        await self._stop_waker()
        try:
            await self._runner.run(self._sync.close)
        finally:
            if self._owns_runner:
                await self._runner.aclose()

    def subscribe(self, callback: Subscriber | Callable[[SessionEvent], Awaitable[object]]) -> Callable[[], None]:
        """Call ``callback(event)`` for each event committed through this manager, after its commit; returns a
        function that unsubscribes.

        As :meth:`SessionManager.subscribe <sessionflow.application.manager.ManagerCore.subscribe>`: in
        subscription order, one session's events in version order, a subscriber that raises is logged and
        skipped. An ``async def`` callback is awaited on the loop before the next subscriber is called. Not a
        coroutine: subscribing does no I/O.
        """
        if not callable(callback):
            raise InvalidInput("callback", "must be callable")
        wait = self._runner.wait

        def deliver(event: SessionEvent) -> None:
            result = callback(event)
            if inspect.isawaitable(result):
                wait(result)

        return self._sync.subscribe(deliver)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sync.store!r}, runner={self._runner!r})"
