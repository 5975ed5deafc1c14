"""``ManagerReads``: the reads of :class:`~sessionflow.application.manager.ManagerCore`.

The sessions (``get``, ``get_active``, ``list``, ``page``, ``history``, ``count``), handed to
:mod:`~sessionflow.application.reads` after their arguments are checked; the overview's reads
(``deadlines_within``, ``count_by_status``, the feed by event name), handed to
:mod:`~sessionflow.application.overview`; and the global event feed and its named consumers (``events``,
``consume``, ...), handed to :mod:`~sessionflow.application.feed`.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sessionflow.application import validation as valid
from sessionflow.application.feed import MAX_PAGE, Feed, Handler, check_position
from sessionflow.application.overview import Overview
from sessionflow.application.reads import Reads, SessionPage
from sessionflow.application.tracing import traced
from sessionflow.domain.definitions import LifecycleRegistry
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import MAX_LIST_LIMIT, parse_session_id, validate_identifier
from sessionflow.errors import InvalidInput

__all__ = ["MAX_WINDOW", "ManagerReads"]

#: The widest window of :meth:`ManagerReads.deadlines_within`.
MAX_WINDOW = timedelta(days=36_500)


class ManagerReads:
    """The reads and the global feed of the synchronous facade (a part of
    :class:`~sessionflow.application.manager.ManagerCore`, which builds what they use)."""

    _reads: Reads
    _feed: Feed
    _overview: Overview
    _registry: LifecycleRegistry

    @traced("get")
    def get(self, session_id: UUID | str) -> Session:
        """The session. An overdue live session is expired first (recorded once, as ``"system"``).

        Raises :class:`~sessionflow.errors.SessionNotFound` if there is none (or it was deleted).
        """
        return self._reads.get(parse_session_id(session_id))

    @traced("get_active")
    def get_active(self, session_id: UUID | str) -> Session | None:
        """The session while it is pending or in progress and not past its deadline, else ``None``."""
        return self._reads.get_active(parse_session_id(session_id))

    @traced("list")
    def list(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
             user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
             lifecycle: str | None = None, created_after: datetime | None = None,
             created_before: datetime | None = None, cursor: str | None = None, limit: int = 100,
             offset: int = 0, newest_first: bool = False) -> builtins.list[Session]:
        """Sessions matching every given filter, in creation order: oldest first, or newest first when
        ``newest_first`` is true. Sessions created one after another (each call returned before the next began),
        from any thread or process on one database, list in that order, also within one millisecond.

        ``lifecycle``: the name sessions were created under. ``created_after <= created_at < created_before``
        (aware datetimes). ``cursor``: continue after the place a :meth:`page`'s ``next_cursor`` stands for
        (``offset`` then skips within what follows). ``limit`` is at most
        :data:`~sessionflow.domain.values.MAX_LIST_LIMIT` (1000). Overdue live sessions are expired first, so
        none is listed as pending or in progress past its deadline.
        """
        filters = valid.list_arguments(
            self._registry, status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
            lifecycle=lifecycle, created_after=created_after, created_before=created_before, limit=limit,
            offset=offset, newest_first=newest_first)
        return self._reads.list(filters, limit, offset, valid.decode_cursor(cursor, filters.newest_first))

    @traced("page")
    def page(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
             user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
             lifecycle: str | None = None, created_after: datetime | None = None,
             created_before: datetime | None = None, cursor: str | None = None, limit: int = 100,
             newest_first: bool = False) -> SessionPage:
        """One page of :meth:`list` walked by cursor (keyset pagination): ``items``, and ``next_cursor`` to pass
        as ``cursor`` for the next page (``None`` after the last one). Page 1,000 costs what page 1 costs, and
        sessions created meanwhile never shift a page. A cursor pages on in the direction it was issued for
        (``newest_first``); a cursor whose session was purged meanwhile is refused (``InvalidInput``: restart
        paging)."""
        filters = valid.list_arguments(
            self._registry, status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
            lifecycle=lifecycle, created_after=created_after, created_before=created_before, limit=limit,
            newest_first=newest_first)
        return self._reads.page(filters, limit, valid.decode_cursor(cursor, filters.newest_first))

    @traced("history")
    def history(self, session_id: UUID | str) -> builtins.list[SessionEvent]:
        """Every event of the session, oldest first — deleted sessions included."""
        return self._reads.history(parse_session_id(session_id))

    @traced("count")
    def count(self, status: SessionStatus | str | None = None) -> int:
        """How many sessions there are (deleted ones excluded), optionally of one status."""
        statuses = valid.statuses(status, self._registry)
        if statuses is not None and len(statuses) != 1:
            raise InvalidInput("status", "count takes one status")
        return self._reads.count(next(iter(statuses)) if statuses else None)

    @traced("count_by_status")
    def count_by_status(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
                        user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
                        lifecycle: str | None = None, created_after: datetime | None = None,
                        created_before: datetime | None = None) -> dict[str, int]:
        """How many sessions match the filters of :meth:`list` (the same arguments, without the page), per
        status: ``{status: count}``, in status order, a status with none left out. Deleted sessions are not
        counted; the sessions due now are expired first, as a list does. A read of its own, apart from a page,
        so a table can show its page before its counts."""
        filters = valid.list_arguments(
            self._registry, status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
            lifecycle=lifecycle, created_after=created_after, created_before=created_before, limit=1)
        return self._overview.count_by_status(filters)

    @traced("deadlines_within")
    def deadlines_within(self, window: timedelta, *, user_id: str | None = None,
                         limit: int = 100) -> builtins.list[Session]:
        """The live sessions whose deadline falls within ``window`` from now (after now, at most ``now +
        window``), soonest first: up to ``limit`` (at most 1000), with ``user_id`` that user's only. Read from
        the store's deadline index; a session already past its deadline is being expired and is not listed."""
        return self._overview.deadlines_within(_window(window), valid.check_int(limit, "limit", 1, MAX_LIST_LIMIT),
                                               valid.optional_id(user_id, "user_id"))

    # ------------------------------------------------------------------ the global feed

    @traced("events")
    def events(self, *, after: int = 0, limit: int = 1000, event: str | Iterable[str] | None = None,
               user_id: str | None = None) -> builtins.list[SessionEvent]:
        """Up to ``limit`` (at most 10,000) events of every session with a ``position`` above ``after``, in
        position order: commit order, so an event never appears below a position already read.

        ``event``: only the events of this name (or of these names: ``"failed"``, ``["created", "failed"]``).
        ``user_id``: only the events of that user's sessions."""
        if event is None:
            return self._feed.events(after, limit, user_id)
        names = _event_names(event)
        position = check_position(after)
        page = valid.check_int(limit, "limit", 1, MAX_PAGE)
        return self._overview.named_events(position, page, names, valid.optional_id(user_id, "user_id"))

    def last_position(self) -> int:
        """The position of the newest event in the feed (0: none yet)."""
        return self._feed.last_position()

    def consumer_position(self, name: str) -> int:
        """The position the consumer ``name`` has handled the feed up to (0: nothing yet)."""
        return self._feed.consumer_position(name)

    def save_consumer_position(self, name: str, position: int) -> None:
        """Store ``position`` for the consumer ``name`` (never moving it back)."""
        self._feed.save_consumer_position(name, position)

    def consume(self, name: str, handler: Handler, *, batch_size: int = 100, follow: bool = True,
                stop: threading.Event | None = None, poll_interval: float = 0.5, max_events: int | None = None) -> int:
        """Hand each event after the position stored for ``name`` to ``handler(event)``, in position order, and
        store the position of each batch once its handler calls returned; returns how many were handled.

        At-least-once: after a crash the consumer resumes at its stored position, so a handler must be
        idempotent (``event.record_id`` identifies an event). ``follow``: wait for new events (woken by other
        processes' commits where the store can tell, else every ``poll_interval`` seconds) until ``stop`` is
        set or ``max_events`` were handled; else return when the feed is exhausted. An exception of the
        handler stops the consumer (the events before it stay handled) and propagates.
        """
        return self._feed.consume(name, handler, batch_size=batch_size, follow=follow, stop=stop,
                                  poll_interval=poll_interval, max_events=max_events)


def _window(value: Any) -> timedelta:
    """A window of deadlines: a positive ``timedelta`` of at most :data:`MAX_WINDOW`."""
    if not isinstance(value, timedelta):
        raise InvalidInput("window", f"expected a timedelta, got {type(value).__name__}")
    if not timedelta(0) < value <= MAX_WINDOW:
        raise InvalidInput("window", f"must be above 0 and at most {MAX_WINDOW.days} days")
    return value


def _event_names(value: Any) -> frozenset[str]:
    """The event names of a feed filter: one name or a non-empty collection of names."""
    if isinstance(value, str):
        return frozenset({validate_identifier(str(value), "event")})
    if not isinstance(value, Iterable) or isinstance(value, bytes | dict):
        raise InvalidInput("event", f"expected an event name or a list of names, got {type(value).__name__}")
    names = frozenset(validate_identifier(str(v) if isinstance(v, str) else v, "event") for v in value)
    if not names:
        raise InvalidInput("event", "give at least one event name")
    return names
