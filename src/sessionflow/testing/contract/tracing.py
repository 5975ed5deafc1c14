"""The trace context of each event, on every store: what a write recorded (``SessionEvent.trace_context``) reads
back from ``history`` and the feed as it was written, and an event written without one reads back without one.

The managers here are given a tracing of their own (:class:`FixedTracing`, the tracing port's smallest
implementation: no spans, one fixed current context), so the suite needs no tracing library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest

from sessionflow import SessionEvent, SessionManager, TraceContext
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager

#: The context the managers of these tests write under (a ``tracestate`` too, so both columns are checked).
WRITTEN_UNDER = TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                             tracestate="rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")


class FixedTracing:
    """A tracing that opens no span and whose current context is ``current`` (``None``: no span)."""

    def __init__(self, current: TraceContext | None) -> None:
        self.current = current

    def active(self) -> bool:
        return False  # no span of the operations: only the events' trace context is under test

    def span(self, name: str, attributes: Mapping[str, Any], *, parent: TraceContext | None = None,
             root: bool = False) -> AbstractContextManager[Any]:
        raise AssertionError("no span is opened while active() is false")

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Nothing to annotate: no span."""

    def carrier(self) -> TraceContext | None:
        return self.current

    def link(self, contexts: Sequence[TraceContext]) -> None:
        """Nothing to link: no span."""


def _contexts(events: Sequence[SessionEvent]) -> list[TraceContext | None]:
    return [event.trace_context for event in events]


class TestTraceContext(ContractSuite):
    """Each event keeps the trace context its write recorded."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10), tracing=FixedTracing(WRITTEN_UNDER))

    def test_every_write_records_its_context_and_reads_it_back(self, mgr: SessionManager,
                                                              clock: ManualClock) -> None:
        one = mgr.create(performer_id="u", user_id="u", file_paths=["a.py"])
        mgr.start(one.id, performer_id="u")
        mgr.record_file(one.id, "a.py", performer_id="u")
        mgr.complete(one.id, performer_id="u")
        batch = mgr.create_many([{"user_id": "v"}, {"user_id": "w"}], performer_id="ops")
        clock.advance(timedelta(minutes=11))
        assert mgr.expire_sessions() == 2
        history = mgr.history(one.id)
        assert _contexts(history) == [WRITTEN_UNDER] * 4
        assert history[0].trace_context is not None
        assert history[0].trace_context.tracestate == WRITTEN_UNDER.tracestate
        feed = mgr.events(limit=100)
        assert len(feed) == 8
        assert _contexts(feed) == [WRITTEN_UNDER] * 8
        assert [str(e.event) for e in mgr.history(batch[0].id)] == ["created", "expired"]

    def test_an_event_written_outside_any_span_has_none(self, make_manager: MakeManager) -> None:
        mgr = make_manager(tracing=FixedTracing(None))
        session = mgr.create(performer_id="u")
        mgr.touch(session.id, performer_id="u")
        assert _contexts(mgr.history(session.id)) == [None, None]
        assert _contexts(mgr.events()) == [None, None]
        untraced = make_manager(tracing=False)
        assert _contexts(untraced.history(untraced.create(performer_id="u").id)) == [None]

    def test_the_context_is_not_part_of_the_events_identity(self, mgr: SessionManager) -> None:
        session = mgr.create(performer_id="u")
        (stored,) = mgr.history(session.id)
        assert stored.trace_context == WRITTEN_UNDER
        bare = stored.evolve(trace_context=None)
        assert bare == stored
        assert hash(bare) == hash(stored)
