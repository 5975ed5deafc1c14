"""What an operator's overview reads: the sessions of a window of deadlines, the counts per status under a list's
filters, and the feed's events of some names — each from the store's own read when it has one
(:class:`~sessionflow.application.ports.ListsByDeadline`, :class:`~sessionflow.application.ports.CountsQueries`,
:class:`~sessionflow.application.ports.FiltersFeed`), else by walking what every store offers.

Like a list, they never show a live session past its deadline: the deadlines' window starts after now, and the
counts are taken once the sessions due now were expired. The arguments arrive validated
(:mod:`~sessionflow.application.validation` and :mod:`~sessionflow.application.manager_reads`).
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from sessionflow.application.feed import MAX_PAGE
from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import (
    CountsByStatus,
    CountsQueries,
    EventStore,
    FiltersFeed,
    ListsByDeadline,
    Query,
)
from sessionflow.application.timeouts import Timeouts
from sessionflow.application.validation import ListFilters
from sessionflow.domain.models import Session, SessionEvent

__all__ = ["Overview"]

#: Sessions read per page when a store without the overview's reads is walked.
_WALK = 1000


class Overview:
    """The overview's reads over a manager's pipeline and timeouts (see the module's docstring)."""

    __slots__ = ("_pipeline", "_timeouts")

    def __init__(self, pipeline: WritePipeline, timeouts: Timeouts) -> None:
        self._pipeline = pipeline
        self._timeouts = timeouts

    def deadlines_within(self, window: timedelta, limit: int, user_id: str | None) -> list[Session]:
        """Up to ``limit`` live sessions whose deadline falls after now and at most ``window`` later, soonest
        first (with ``user_id``: that user's only)."""
        store = self._pipeline.store
        now = self._pipeline.now()
        until = now + window
        if isinstance(store, ListsByDeadline):
            return store.query_deadlines(now, until, limit, user_id=user_id)
        found = (s for s in _walk(store, Query(user_id=user_id, live_after=now))
                 if (due := s.due_at) is not None and now < due <= until)
        return heapq.nsmallest(limit, found, key=_deadline)

    def count_by_status(self, filters: ListFilters) -> dict[str, int]:
        """How many sessions match ``filters``, per status (a status with none left out), once the sessions due
        now were expired."""
        store = self._pipeline.store
        now = self._pipeline.now()
        if store.has_due(now):
            self._timeouts.sweep(now, 1000, next_deadline=False)
        query = Query(status=filters.statuses, user_id=filters.user_id, workspace_id=filters.workspace_id,
                      module_name=filters.module_name, lifecycle=filters.lifecycle, live_after=now,
                      created_after=filters.created_after, created_before=filters.created_before)
        if isinstance(store, CountsQueries):
            counts = store.count_query(query)
        elif _unfiltered(filters) and isinstance(store, CountsByStatus):
            counts = store.count_by_status()
        else:
            counts = {}
            for session in _walk(store, query):
                counts[session.status] = counts.get(session.status, 0) + 1
        return {str(status): n for status, n in sorted(counts.items()) if n}

    def named_events(self, after: int, limit: int, names: frozenset[str],
                     user_id: str | None) -> list[SessionEvent]:
        """Up to ``limit`` events named in ``names`` with a position above ``after``, in position order (with
        ``user_id``: of that user's sessions)."""
        store = self._pipeline.store
        if isinstance(store, FiltersFeed):
            return store.read_named_events(after, limit, names, user_id=user_id)
        found: list[SessionEvent] = []
        while len(found) < limit:
            page = store.read_events(after, MAX_PAGE, user_id=user_id)
            if not page:
                break
            found += [e for e in page if str(e.event) in names]
            after = page[-1].position or after
        return found[:limit]


def _deadline(session: Session) -> datetime:
    due = session.due_at
    assert due is not None  # only sessions with a deadline are compared
    return due


def _unfiltered(filters: ListFilters) -> bool:
    return all(value is None for value in (filters.statuses, filters.user_id, filters.workspace_id,
                                           filters.module_name, filters.lifecycle, filters.created_after,
                                           filters.created_before))


def _walk(store: EventStore, query: Query) -> list[Session]:
    """Every session ``query``'s filters match, page after page in list order."""
    found: list[Session] = []
    after = None
    while True:
        page = store.query(Query(status=query.status, user_id=query.user_id, workspace_id=query.workspace_id,
                                 module_name=query.module_name, lifecycle=query.lifecycle,
                                 live_after=query.live_after, created_after=query.created_after,
                                 created_before=query.created_before, limit=_WALK, after=after))
        found += page
        if len(page) < _WALK:
            return found
        after = page[-1].id
