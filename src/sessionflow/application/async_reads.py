"""``AsyncReads``: the reads and the global feed of :class:`~sessionflow.application.async_manager.AsyncManagerCore`.

The reads of sessions and pages of the feed await the synchronous manager's methods through the runner. What only
an asyncio facade has is here too: feed consumers whose handlers may be ``async def`` (:meth:`AsyncReads.consume`),
the feed as an async iterator (:meth:`AsyncReads.follow`), and what they wait on between empty reads
(:class:`_Wakeup`: a timeout, their ``stop`` event, or a notice of the store's change watcher).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sessionflow.application.async_base import AsyncManagerBase
from sessionflow.application.feed import (
    MAX_PAGE,
    PROCESS_SPAN,
    check_poll_interval,
    consumer_options,
    process_attributes,
)
from sessionflow.application.reads import SessionPage
from sessionflow.application.tracing import Tracing
from sessionflow.application.validation import check_int
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import validate_identifier

__all__ = ["AsyncHandler", "AsyncReads"]

#: Handles one feed event; may be a plain function or an ``async def`` one.
AsyncHandler = Callable[[SessionEvent], object]


class AsyncReads(AsyncManagerBase):
    """The reads and the global feed of the asyncio facade, as coroutines (and one async iterator)."""

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
                   offset: int = 0, newest_first: bool = False) -> builtins.list[Session]:
        """Sessions matching every given filter, in creation order, newest first when ``newest_first`` is true
        (see ``SessionManager.list``)."""
        return await self._call(self._sync.list, status=status, user_id=user_id, workspace_id=workspace_id,
                                module_name=module_name, lifecycle=lifecycle, created_after=created_after,
                                created_before=created_before, cursor=cursor, limit=limit, offset=offset,
                                newest_first=newest_first)

    async def page(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
                   user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
                   lifecycle: str | None = None, created_after: datetime | None = None,
                   created_before: datetime | None = None, cursor: str | None = None,
                   limit: int = 100, newest_first: bool = False) -> SessionPage:
        """One page of ``list`` walked by cursor, and the next page's cursor (see ``SessionManager.page``)."""
        return await self._call(self._sync.page, status=status, user_id=user_id, workspace_id=workspace_id,
                                module_name=module_name, lifecycle=lifecycle, created_after=created_after,
                                created_before=created_before, cursor=cursor, limit=limit,
                                newest_first=newest_first)

    async def history(self, session_id: UUID | str) -> builtins.list[SessionEvent]:
        """Every event of the session, oldest first — deleted sessions included."""
        return await self._call(self._sync.history, session_id)

    async def count(self, status: SessionStatus | str | None = None) -> int:
        """How many sessions there are (deleted ones excluded), optionally of one status."""
        return await self._call(self._sync.count, status)

    async def count_by_status(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
                              user_id: str | None = None, workspace_id: str | None = None,
                              module_name: str | None = None, lifecycle: str | None = None,
                              created_after: datetime | None = None,
                              created_before: datetime | None = None) -> dict[str, int]:
        """How many sessions match the filters of ``list``, per status (see ``SessionManager.count_by_status``)."""
        return await self._call(self._sync.count_by_status, status=status, user_id=user_id,
                                workspace_id=workspace_id, module_name=module_name, lifecycle=lifecycle,
                                created_after=created_after, created_before=created_before)

    async def deadlines_within(self, window: timedelta, *, user_id: str | None = None,
                               limit: int = 100) -> builtins.list[Session]:
        """The live sessions whose deadline falls within ``window`` from now, soonest first (see
        ``SessionManager.deadlines_within``)."""
        return await self._call(self._sync.deadlines_within, window, user_id=user_id, limit=limit)

    # ------------------------------------------------------------------ the global feed

    async def events(self, *, after: int = 0, limit: int = 1000, event: str | Iterable[str] | None = None,
                     user_id: str | None = None) -> builtins.list[SessionEvent]:
        """Up to ``limit`` events of every session with a ``position`` above ``after``, in position order (only
        those named ``event``, of ``user_id``'s sessions, when given: see ``SessionManager.events``)."""
        return await self._call(self._sync.events, after=after, limit=limit, event=event, user_id=user_id)

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
                tracing = self._sync._tracing
                try:
                    for event in batch:
                        if tracing is not None and tracing.active():
                            await _traced(tracing, name, event, handler)
                        else:
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


async def _traced(tracing: Tracing, name: str, event: SessionEvent, handler: AsyncHandler) -> None:
    """``handler(event)`` (awaited if it returns an awaitable) in a span ``sessionflow.feed.process``, a child of
    the span that wrote the event when it recorded one, as the synchronous consumer's."""
    with tracing.span(PROCESS_SPAN, process_attributes(name, event), parent=event.trace_context) as span:
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                await result
        except BaseException as error:
            span.fail(error, str(getattr(error, "code", "error")))
            raise


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
