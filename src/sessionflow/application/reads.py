"""Reads: one session, a filtered page (by offset or by cursor), a history, counts — never a live session past
its deadline.

A session read by id is expired first when it is overdue (lazy expiry, recorded once as ``"system"``); a
list first sweeps whatever is due, so none is listed as pending or in progress past its deadline. The
arguments arrive validated (:mod:`sessionflow.application.validation`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from uuid import UUID

from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import Query
from sessionflow.application.timeouts import Timeouts
from sessionflow.application.validation import ListFilters, encode_cursor
from sessionflow.domain.models import LIVE_STATUSES, Session, SessionEvent
from sessionflow.errors import InvalidInput, SessionNotFound

__all__ = ["Reads", "SessionPage", "cursor_of"]


@dataclass(frozen=True, slots=True)
class SessionPage:
    """One page of a list walked with a cursor: the sessions, and the cursor of the next page.

    ``next_cursor`` is ``None`` when no session follows the page (given to ``page(cursor=...)`` or
    ``list(cursor=...)``, it continues right after the page's last session, whatever was created since).
    """

    items: builtins.list[Session]
    next_cursor: str | None


def cursor_of(session: Session, *, newest_first: bool = False) -> str:
    """The cursor that continues a list right after ``session`` (its place in creation order), in the list's
    direction: oldest first, or newest first when ``newest_first`` is true."""
    return encode_cursor(session.id, newest_first)


#: What a list answers when its cursor's session was purged: its place in the order is no longer known.
GONE_ANCHOR = "the cursor's session is gone (purged), so its place in the list is unknown: restart paging"


class Reads:
    """The read side of a manager over its pipeline's store."""

    __slots__ = ("_pipeline", "_timeouts")

    def __init__(self, pipeline: WritePipeline, timeouts: Timeouts) -> None:
        self._pipeline = pipeline
        self._timeouts = timeouts

    def get(self, sid: UUID) -> Session:
        pipeline = self._pipeline
        return pipeline.load(sid, pipeline.now())

    def get_active(self, sid: UUID) -> Session | None:
        pipeline = self._pipeline
        try:
            session = pipeline.load(sid, pipeline.now())
        except SessionNotFound:
            return None
        return session if session.status in LIVE_STATUSES else None

    def list(self, filters: ListFilters, limit: int, offset: int,
             after: UUID | None = None) -> builtins.list[Session]:
        """One page of the sessions matching the filters, once the sessions due now were expired, in creation
        order (newest first when ``filters.newest_first``), after the session ``after`` (the cursor's anchor).

        An anchor that no longer exists (purged) is refused (:class:`InvalidInput` on ``cursor``): the stores
        list nothing after a missing anchor, so this costs a read only when a cursor's page comes back empty."""
        pipeline = self._pipeline
        now = pipeline.now()
        store = pipeline.store
        if store.has_due(now):
            self._timeouts.sweep(now, 1000, next_deadline=False)
        found = store.query(Query(
            status=filters.statuses, user_id=filters.user_id, workspace_id=filters.workspace_id,
            module_name=filters.module_name, limit=limit, offset=offset, live_after=now,
            lifecycle=filters.lifecycle, created_after=filters.created_after,
            created_before=filters.created_before, after=after, newest_first=filters.newest_first))
        if not found and after is not None and store.get(after) is None:
            raise InvalidInput("cursor", GONE_ANCHOR)
        return found

    def page(self, filters: ListFilters, limit: int, after: UUID | None) -> SessionPage:
        """Up to ``limit`` sessions after the cursor's position, and the next page's cursor (one more row is
        read to know whether there is a next page)."""
        found = self.list(filters, limit + 1, 0, after)
        if len(found) <= limit:
            return SessionPage(found, None)
        items = found[:limit]
        return SessionPage(items, cursor_of(items[-1], newest_first=filters.newest_first))

    def history(self, sid: UUID) -> builtins.list[SessionEvent]:
        events = self._pipeline.store.history(sid)
        if not events:
            raise SessionNotFound(sid)
        return events

    def count(self, status: str | None) -> int:
        return self._pipeline.store.count(status)
