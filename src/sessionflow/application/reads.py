"""Reads: one session, a filtered page, a history, counts — never a live session past its deadline.

A session read by id is expired first when it is overdue (lazy expiry, recorded once as ``"system"``); a
list first sweeps whatever is due, so none is listed as pending or in progress past its deadline. The
arguments arrive validated (:mod:`sessionflow.application.validation`).
"""

from __future__ import annotations

import builtins
from uuid import UUID

from sessionflow.application.pipeline import WritePipeline
from sessionflow.application.ports import Query
from sessionflow.application.timeouts import Timeouts
from sessionflow.domain.models import LIVE_STATUSES, Session, SessionEvent
from sessionflow.errors import SessionNotFound

__all__ = ["Reads"]


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

    def list(self, statuses: frozenset[str] | None, user_id: str | None, workspace_id: str | None,
             module_name: str | None, limit: int, offset: int) -> list[Session]:
        """One page of the sessions matching the filters, once the sessions due now were expired."""
        pipeline = self._pipeline
        now = pipeline.now()
        store = pipeline.store
        if store.has_due(now):
            self._timeouts.sweep(now, 1000, next_deadline=False)
        return store.query(Query(status=statuses, user_id=user_id, workspace_id=workspace_id,
                                 module_name=module_name, limit=limit, offset=offset, live_after=now))

    def history(self, sid: UUID) -> builtins.list[SessionEvent]:
        events = self._pipeline.store.history(sid)
        if not events:
            raise SessionNotFound(sid)
        return events

    def count(self, status: str | None) -> int:
        return self._pipeline.store.count(status)
