"""``AsyncManagerCore``: the asyncio facade of :class:`~sessionflow.application.manager.ManagerCore`.

It holds a synchronous manager and runs each of its methods through a :class:`Runner` — on the loop's thread
in a greenlet whose I/O awaits an asyncio driver, or on a worker thread for a blocking driver (see
:mod:`sessionflow.adapters.aio`) — so the whole write pipeline, its validation, policies, lifecycles,
subscribers and timeouts are the synchronous manager's own, with the same typed errors, and never block the
event loop. What only an asyncio facade has is here: ``async def`` subscribers and feed handlers, the
feed as an async iterator (:meth:`AsyncManagerCore.follow`), and the waker's bridge to the loop
(:mod:`sessionflow.application.async_support`). The public class with the constructors that open a store
(``in_memory()``, ``open(url)``) is :class:`sessionflow.AsyncSessionManager`, its subclass in
:mod:`sessionflow.aio`.

Longer than 400 lines: it is the whole public API of the library again, some forty coroutines of a few lines
each with the docstring that documents it; every one hands its work to the synchronous manager at once.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar
from uuid import UUID

from sessionflow.application.async_support import LoopTarget, Runner, UnboundWaker, task_aware_delivery
from sessionflow.application.batches import CreateItem, SendItem
from sessionflow.application.delivery import Subscriber
from sessionflow.application.feed import MAX_PAGE, check_poll_interval, consumer_options
from sessionflow.application.maintenance import Difference
from sessionflow.application.manager import ManagerCore
from sessionflow.application.ports import Clock, EventStore, Waker
from sessionflow.application.reads import SessionPage
from sessionflow.application.retention import Archive, PurgeResult, purge_arguments
from sessionflow.application.timeouts import SweepResult
from sessionflow.application.validation import UNSET, check_int
from sessionflow.domain.deadlines import DeadlinePolicy
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.definitions import LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import validate_identifier
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["AsyncHandler", "AsyncManagerCore", "Runner"]

T = TypeVar("T")
P = ParamSpec("P")

#: Handles one feed event; may be a plain function or an ``async def`` one.
AsyncHandler = Callable[[SessionEvent], object]


class AsyncManagerCore:
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

    def _new_watcher(self) -> Any:
        """The change watcher reporting other processes' commits (``subscribe(callback) -> unsubscribe``), or
        ``None`` (here: none; :class:`sessionflow.AsyncSessionManager` builds one for its store). The waker and
        the feed's consumers follow it."""
        return None

    def _new_waker(self, cleanup_interval: timedelta, loop: asyncio.AbstractEventLoop) -> Waker:
        """The waker :meth:`start_timeouts` builds when none was given (here: none; a subclass picks one)."""
        raise InvalidInput("waker", "no waker given: pass one to the constructor or to start_timeouts()")

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._closed:
            raise StoreError("the manager is closed")
        return await self._runner.run(fn, *args, **kwargs)

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

    # ------------------------------------------------------------------ writes

    async def create(self, *, performer_id: str, user_id: str | None = None, workspace_id: str | None = None,
                     module_name: str | None = None, file_paths: Iterable[str] | None = None,
                     metadata: Mapping[str, Any] | None = None, ttl: timedelta | None = None,
                     lifecycle: LifecycleDefinition | str | None = None, start: bool = False) -> Session:
        """Create a session in its lifecycle's initial state, or created and started at once with ``start``
        (see ``SessionManager.create``)."""
        return await self._call(self._sync.create, performer_id=performer_id, user_id=user_id,
                                workspace_id=workspace_id, module_name=module_name, file_paths=file_paths,
                                metadata=metadata, ttl=ttl, lifecycle=lifecycle, start=start)

    async def create_many(self, items: Iterable[CreateItem | Mapping[str, Any]], *,
                          performer_id: str) -> builtins.list[Session]:
        """Create a session per item, all in one transaction (see ``SessionManager.create_many``)."""
        return await self._call(self._sync.create_many, items, performer_id=performer_id)

    async def send_many(self, items: Iterable[SendItem | tuple[Any, ...]], *,
                        performer_id: str) -> builtins.list[Session]:
        """Send an event per item, all in one transaction (see ``SessionManager.send_many``)."""
        return await self._call(self._sync.send_many, items, performer_id=performer_id)

    async def send(self, session_id: UUID | str, event: str, *, performer_id: str,
                   expected_version: int | None = None, **args: Any) -> Session:
        """Send any event of the session's lifecycle, with keyword arguments for its guards and validators."""
        return await self._call(self._sync.send_with, session_id, event, args, performer_id=performer_id,
                                expected_version=expected_version)

    async def send_with(self, session_id: UUID | str, event: str, args: Mapping[str, Any] | None = None, *,
                        performer_id: str, expected_version: int | None = None) -> Session:
        """:meth:`send` with the event's arguments as a mapping."""
        return await self._call(self._sync.send_with, session_id, event, args, performer_id=performer_id,
                                expected_version=expected_version)

    async def migrate(self, session_id: UUID | str, *, performer_id: str, to_version: int | None = None,
                      expected_version: int | None = None) -> Session:
        """Move a session to a newer version of its lifecycle (see ``SessionManager.migrate``)."""
        return await self._call(self._sync.migrate, session_id, performer_id=performer_id, to_version=to_version,
                                expected_version=expected_version)

    async def start(self, session_id: UUID | str, *, performer_id: str,
                    expected_version: int | None = None) -> Session:
        """``pending`` → ``in_progress``. Refused once the deadline has passed."""
        return await self._call(self._sync.start, session_id, performer_id=performer_id,
                                expected_version=expected_version)

    async def record_file(self, session_id: UUID | str, path: str, error: str | None = None, *,
                          performer_id: str, expected_version: int | None = None) -> Session:
        """Record the outcome of one of the session's files: processed, or failed with ``error``."""
        return await self._call(self._sync.record_file, session_id, path, error, performer_id=performer_id,
                                expected_version=expected_version)

    async def add_note(self, session_id: UUID | str, *, file_path: str, status: str, memory_id: str | None = None,
                       performer_id: str, expected_version: int | None = None) -> Session:
        """Attach a note (``file_path``, ``memory_id``, ``status``) to a live session."""
        return await self._call(self._sync.add_note, session_id, file_path=file_path, status=status,
                                memory_id=memory_id, performer_id=performer_id, expected_version=expected_version)

    async def complete(self, session_id: UUID | str, *, performer_id: str,
                       expected_version: int | None = None) -> Session:
        """``in_progress`` → ``completed``, once every file is processed or failed."""
        return await self._call(self._sync.complete, session_id, performer_id=performer_id,
                                expected_version=expected_version)

    async def fail(self, session_id: UUID | str, *, reason: str, performer_id: str,
                   expected_version: int | None = None) -> Session:
        """``pending`` | ``in_progress`` → ``failed``, with a non-empty ``reason``."""
        return await self._call(self._sync.fail, session_id, reason=reason, performer_id=performer_id,
                                expected_version=expected_version)

    async def expire(self, session_id: UUID | str) -> Session:
        """Expire an overdue live session now, as ``"system"``."""
        return await self._call(self._sync.expire, session_id)

    async def touch(self, session_id: UUID | str, *, performer_id: str,
                    expected_version: int | None = None) -> Session:
        """Extend the deadline to ``now`` + the session's TTL (never beyond its maximum lifetime)."""
        return await self._call(self._sync.touch, session_id, performer_id=performer_id,
                                expected_version=expected_version)

    async def update(self, session_id: UUID | str, *, performer_id: str, expected_version: int | None = None,
                     current_file: str | Any | None = UNSET, metadata: Mapping[str, Any] | Any = UNSET,
                     status: SessionStatus | str | None = None, reason: str | None = None) -> Session:
        """Change ``current_file`` and/or replace ``metadata``, and/or move to ``status`` (see
        ``SessionManager.update``)."""
        return await self._call(self._sync.update, session_id, performer_id=performer_id,
                                expected_version=expected_version, current_file=current_file, metadata=metadata,
                                status=status, reason=reason)

    async def delete(self, session_id: UUID | str, *, performer_id: str,
                     expected_version: int | None = None) -> Session:
        """Delete a session: it is gone from :meth:`get` and :meth:`list`; its history stays readable."""
        return await self._call(self._sync.delete, session_id, performer_id=performer_id,
                                expected_version=expected_version)

    # ------------------------------------------------------------------ reads

    async def get(self, session_id: UUID | str) -> Session:
        """The session (an overdue live one is expired first); ``SessionNotFound`` if there is none."""
        return await self._call(self._sync.get, session_id)

    async def get_active(self, session_id: UUID | str) -> Session | None:
        """The session while it is pending or in progress and not past its deadline, else ``None``."""
        return await self._call(self._sync.get_active, session_id)

    async def list(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
                   user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
                   lifecycle: str | None = None, created_after: datetime | None = None,
                   created_before: datetime | None = None, cursor: str | None = None, limit: int = 100,
                   offset: int = 0) -> builtins.list[Session]:
        """Sessions matching every given filter, ordered by ``created_at`` then id (see ``SessionManager.list``)."""
        return await self._call(self._sync.list, status=status, user_id=user_id, workspace_id=workspace_id,
                                module_name=module_name, lifecycle=lifecycle, created_after=created_after,
                                created_before=created_before, cursor=cursor, limit=limit, offset=offset)

    async def page(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
                   user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
                   lifecycle: str | None = None, created_after: datetime | None = None,
                   created_before: datetime | None = None, cursor: str | None = None,
                   limit: int = 100) -> SessionPage:
        """One page of ``list`` walked by cursor, and the next page's cursor (see ``SessionManager.page``)."""
        return await self._call(self._sync.page, status=status, user_id=user_id, workspace_id=workspace_id,
                                module_name=module_name, lifecycle=lifecycle, created_after=created_after,
                                created_before=created_before, cursor=cursor, limit=limit)

    async def history(self, session_id: UUID | str) -> builtins.list[SessionEvent]:
        """Every event of the session, oldest first — deleted sessions included."""
        return await self._call(self._sync.history, session_id)

    async def count(self, status: SessionStatus | str | None = None) -> int:
        """How many sessions there are (deleted ones excluded), optionally of one status."""
        return await self._call(self._sync.count, status)

    # ------------------------------------------------------------------ the global feed

    async def events(self, *, after: int = 0, limit: int = 1000) -> builtins.list[SessionEvent]:
        """Up to ``limit`` events of every session with a ``position`` above ``after``, in position order."""
        return await self._call(self._sync.events, after=after, limit=limit)

    async def last_position(self) -> int:
        """The position of the newest event in the feed (0: none yet)."""
        return await self._call(self._sync.last_position)

    async def consumer_position(self, name: str) -> int:
        """The position the consumer ``name`` has handled the feed up to (0: nothing yet)."""
        return await self._call(self._sync.consumer_position, name)

    async def save_consumer_position(self, name: str, position: int) -> None:
        """Store ``position`` for the consumer ``name`` (never moving it back)."""
        await self._call(self._sync.save_consumer_position, name, position)

    async def consume(self, name: str, handler: AsyncHandler, *, batch_size: int = 100, follow: bool = True,
                      stop: asyncio.Event | None = None, poll_interval: float = 0.5,
                      max_events: int | None = None) -> int:
        """Hand each event after the position stored for ``name`` to ``handler(event)`` (a plain or an
        ``async def`` function), in position order, and store the position of each batch once its handler calls
        returned; returns how many were handled.

        At-least-once, as ``SessionManager.consume``: a consumer resumes at its stored position, so a handler
        must be idempotent. ``follow``: wait for new events (``asyncio.sleep(poll_interval)`` between empty
        reads) until ``stop`` is set or ``max_events`` were handled; else return when the feed is exhausted. An
        exception of the handler stops the consumer (the events before it stay handled) and propagates.
        """
        name, batch_size, interval, max_events = consumer_options(name, handler, batch_size, poll_interval,
                                                                  max_events, stop, asyncio.Event)
        position = await self.consumer_position(name)
        wakeup = _Wakeup(self._new_watcher() if follow else None)
        try:
            return await self._consume(name, handler, position, batch_size, follow, stop, interval, max_events,
                                       wakeup)
        finally:
            wakeup.close()

    async def _consume(self, name: str, handler: AsyncHandler, position: int, batch_size: int, follow: bool,
                       stop: asyncio.Event | None, interval: float, max_events: int | None,
                       wakeup: _Wakeup) -> int:
        handled = 0
        while not (stop is not None and stop.is_set()):
            wanted = batch_size if max_events is None else min(batch_size, max_events - handled)
            batch = await self.events(after=position, limit=wanted)
            if batch:
                start = position
                try:
                    for event in batch:
                        result = handler(event)
                        if inspect.isawaitable(result):
                            await result
                        position = event.position if event.position is not None else position
                        handled += 1
                        if stop is not None and stop.is_set():
                            break
                finally:
                    if position != start:
                        await self.save_consumer_position(name, position)
                if max_events is not None and handled >= max_events:
                    break
                continue
            if not follow:
                break
            await wakeup.wait(stop, interval)
        return handled

    async def follow(self, name: str, *, batch_size: int = 100,
                     poll_interval: float = 0.5) -> AsyncIterator[SessionEvent]:
        """The feed after the position stored for ``name``, as an endless async iterator
        (``async for event in mgr.follow("mailer"): ...``).

        The position of an event is stored when the next one is requested, that is once the loop body that
        handled it returned: a body that raises, or a consumer that stops or crashes, gets that event again
        next time (at-least-once). With nothing new it waits ``poll_interval`` seconds (``asyncio.sleep``) and
        reads again. Leave it with ``break`` (the event of that iteration is not stored as handled) or by
        cancelling the task.
        """
        name = validate_identifier(name, "name")
        batch_size = check_int(batch_size, "batch_size", 1, MAX_PAGE)
        interval = check_poll_interval(poll_interval)
        position = await self.consumer_position(name)
        wakeup = _Wakeup(self._new_watcher())
        try:
            async for event in self._follow(name, position, batch_size, interval, wakeup):
                yield event
        finally:
            wakeup.close()

    async def _follow(self, name: str, position: int, batch_size: int, interval: float,
                      wakeup: _Wakeup) -> AsyncIterator[SessionEvent]:
        while True:
            batch = await self.events(after=position, limit=batch_size)
            if not batch:
                await wakeup.wait(None, interval)
                continue
            for event in batch:
                yield event
                # The body that handled ``event`` returned: the consumer asks for the next one.
                if event.position is not None:
                    position = event.position
                    await self.save_consumer_position(name, position)

    # ------------------------------------------------------------------ timeouts

    async def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000, *,
                              limit: int | None = None) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction (at most about
        ``limit``: see ``SessionManager.expire_sessions``)."""
        return await self._call(self._sync.expire_sessions, now, batch_size, limit=limit)

    async def sweep(self, now: datetime | None = None, batch_size: int = 1000, *,
                    limit: int | None = None) -> SweepResult:
        """:meth:`expire_sessions`, and then the earliest deadline left (see ``SessionManager.sweep``)."""
        return await self._call(self._sync.sweep, now, batch_size, limit=limit)

    async def next_deadline(self) -> datetime | None:
        """The earliest deadline of any live session, or ``None``."""
        return await self._call(self._sync.next_deadline)

    @property
    def waker(self) -> Waker | None:
        """What wakes this manager at its deadlines (see :meth:`start_timeouts`), or ``None``."""
        return self._waker

    async def start_timeouts(self, waker: Waker | None = None, *,
                             cleanup_interval: timedelta = timedelta(minutes=5)) -> Waker:
        """Expire sessions at their deadlines from now on, in the background; returns the waker.

        Without ``waker``: the one given to the constructor, else a new default one
        (:class:`sessionflow.AsyncSessionManager`: an ``ApschedulerWaker`` on an ``AsyncIOScheduler`` of the
        running loop) sweeping every ``cleanup_interval`` as a safety net. A waker with ``bind`` is bound to a
        target whose sweeps run through this manager's runner, on the loop. Sessions that fell due while nothing
        ran are expired before this returns. Stopped by :meth:`stop_timeouts`, :meth:`close` or leaving the
        ``async with`` block. Idempotent.
        """
        if self._closed:
            raise StoreError("the manager is closed")
        loop = asyncio.get_running_loop()
        async with self._timeouts_lock:
            current = waker if waker is not None else self._waker
            if current is None:
                current = self._new_waker(cleanup_interval, loop)
            if self._waker is not None and current is not self._waker:
                await self._stop_waker()
            self._waker = current
            if self._proxy is None or self._proxy.waker is not current:
                self._proxy = UnboundWaker(current)
            self._target.loop = loop
            bind = getattr(current, "bind", None)
            if callable(bind):
                bind(self._target)
            follow = getattr(current, "follow", None)
            if callable(follow):  # deadlines written by other processes wake it too
                follow(self._new_watcher)
            await self._call(self._sync.start_timeouts, self._proxy)  # the delivery tells it the deadlines
            # Its catch-up sweep goes through the runner; its scheduler is made on the running loop.
            await self._runner.run_here(current.start)
            return current

    async def stop_timeouts(self) -> None:
        """Stop the waker (if any); sessions still expire lazily on reads and on :meth:`expire_sessions`."""
        async with self._timeouts_lock:
            await self._stop_waker()

    async def _stop_waker(self) -> None:
        # Off the loop: stopping joins the waker's worker, which may be waiting for a sweep on the loop.
        waker = self._waker
        if waker is not None and self._proxy is not None:
            await asyncio.to_thread(waker.stop)

    # ------------------------------------------------------------------ maintenance

    async def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Drop the projection and rebuild it from the events; returns how many sessions were rebuilt."""
        return await self._call(self._sync.rebuild, progress)

    async def verify(self, progress: Callable[[int], object] | None = None) -> builtins.list[Difference]:
        """Fold every history and list each difference from the stored projection (empty: all agree)."""
        return await self._call(self._sync.verify, progress)

    async def purge(self, *, closed_before: datetime, archive: Path | Archive | None = None, batch_size: int = 500,
                    progress: Callable[[int], object] | None = None) -> PurgeResult:
        """Remove the closed sessions last changed before ``closed_before``, archiving them first when
        ``archive`` is given: :meth:`SessionManager.purge <sessionflow.application.manager.ManagerCore.purge>`,
        run where the manager's work runs (the archive's files too)."""
        cutoff, root, size = purge_arguments(closed_before, archive, batch_size, progress)

        def run() -> PurgeResult:
            writer = self._new_archive(root) if root is not None else archive
            return self._sync.purge(closed_before=cutoff, archive=writer, batch_size=size, progress=progress)

        return await self._call(run)

    def _new_archive(self, root: Path) -> Archive:
        """The archive :meth:`purge` writes under ``root`` (here: none; :class:`sessionflow.AsyncSessionManager`
        writes JSONL files)."""
        raise InvalidInput("archive", "this manager has no archive format: use sessionflow.AsyncSessionManager")

    async def ping(self) -> bool:
        """True when the store answers (for readiness checks)."""
        if self._closed:
            return False
        return await self._call(self._sync.ping)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sync.store!r}, runner={self._runner!r})"


class _Wakeup:
    """What a feed consumer waits on between empty reads: ``seconds``, the consumer's ``stop``, or a notice of
    the change watcher (another process committed), whichever comes first. The watcher calls from its own
    thread: the notice is handed to the loop."""

    __slots__ = ("_event", "_loop", "_unsubscribe")

    def __init__(self, watcher: Any) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._unsubscribe: Callable[[], object] | None = None
        if watcher is not None:
            self._unsubscribe = watcher.subscribe(self._notice)

    def _notice(self, _notice: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, stop: asyncio.Event | None, seconds: float) -> None:
        waits = [asyncio.ensure_future(self._event.wait())]
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            self._event.clear()

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
