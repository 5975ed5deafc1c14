"""The trace crosses the store: each event records the W3C Trace Context of the span it was written in, a
consumer's span for it is a child of that span, and a sweep is a root span linked to the last writers of the
sessions it expired — on every store, and through the asyncio facade."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import format_span_id, format_trace_id

from sessionflow import AsyncSessionManager, SessionEvent, TraceContext
from sessionflow.application.tracing import MAX_LINKS
from sessionflow.testing import ManualClock
from tests.conftest import MakeManager
from tests.tracing.conftest import Spans


def _ids(span: ReadableSpan | Any) -> tuple[str, str]:
    context = span.get_span_context() if hasattr(span, "get_span_context") else span.context
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def _recorded(event: SessionEvent) -> tuple[str, str]:
    assert event.trace_context is not None, event
    return event.trace_context.trace_id, event.trace_context.span_id


def test_each_event_records_the_span_of_the_write_that_made_it(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=spans.tracing)
    with spans.tracer.start_as_current_span("request") as request:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"])
        mgr.start(session.id, performer_id="u1")
        mgr.record_file(session.id, "a.md", performer_id="u1")
    history = mgr.history(session.id)
    writes = [spans.named(f"sessionflow.{name}")[0] for name in ("create", "start", "record_file")]
    assert [_recorded(e) for e in history] == [_ids(w) for w in writes]
    assert {e.trace_context.trace_id for e in history if e.trace_context} == {_ids(request)[0]}
    assert [_recorded(e) for e in mgr.events()] == [_recorded(e) for e in history]
    traceparent = history[0].trace_context.traceparent if history[0].trace_context else ""
    assert traceparent.startswith("00-")
    assert int(traceparent[-2:], 16) & 1  # the sampled flag
    assert history[0].model_dump(mode="json")["trace_context"] == {"traceparent": traceparent, "tracestate": None}


def test_no_span_no_context_and_none_without_tracing(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=spans.tracing)
    session = mgr.create(user_id="u1", performer_id="u1")  # no span current: the create's own is not a child
    (create,) = spans.named("sessionflow.create")
    assert create.parent is None
    assert _recorded(mgr.history(session.id)[0]) == _ids(create)  # the operation's span is current, even so
    untraced = make_manager(tracing=False)
    with spans.tracer.start_as_current_span("request"):
        other = untraced.create(user_id="u1", performer_id="u1")
    assert untraced.history(other.id)[0].trace_context is None


def test_a_tracestate_is_kept_with_the_traceparent(make_manager: MakeManager, spans: Spans) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    remote = SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("rojo", "00f067aa0ba902b7")]))
    mgr = make_manager(tracing=spans.tracing)
    with trace.use_span(NonRecordingSpan(remote)):
        session = mgr.create(user_id="u1", performer_id="u1")
    (event,) = mgr.history(session.id)
    assert event.trace_context is not None
    assert event.trace_context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event.trace_context.tracestate == "rojo=00f067aa0ba902b7"


def test_a_consumer_continues_the_writers_trace(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=spans.tracing)
    with spans.tracer.start_as_current_span("request"):
        session = mgr.create(user_id="u1", performer_id="u1")
        mgr.start(session.id, performer_id="u1")
    untraced = mgr.create(user_id="u2", performer_id="u2")  # outside any span: its create is a root
    writers = [spans.named("sessionflow.create")[0], spans.named("sessionflow.start")[0]]
    spans.clear()
    with spans.tracer.start_as_current_span("consumer loop") as loop:
        assert mgr.consume("mailer", lambda event: None, follow=False) == 3
    handled = spans.named("sessionflow.feed.process")
    assert [(_ids(s)[0], s.parent.span_id if s.parent else None) for s in handled[:2]] == [
        (_ids(w)[0], w.context.span_id) for w in writers]
    assert all(s.parent is not None and s.parent.is_remote for s in handled[:2])
    third = handled[2]  # its event recorded the create's own root span
    assert _recorded(mgr.history(untraced.id)[0]) == (_ids(third)[0], format_span_id(third.parent.span_id))
    assert _ids(loop)[0] not in {_ids(s)[0] for s in handled}


def test_a_sweep_is_a_root_span_linked_to_the_last_writers(make_manager: MakeManager, spans: Spans) -> None:
    clock = ManualClock()
    mgr = make_manager(tracing=spans.tracing, clock=clock, default_ttl=timedelta(minutes=1))
    with spans.tracer.start_as_current_span("load"):
        first = mgr.create(user_id="u", performer_id="u", ttl=timedelta(seconds=30))  # the first one due
        mgr.create_many([{"user_id": f"u{i}"} for i in range(199)], performer_id="ops")
    create = spans.named("sessionflow.create")[0]
    batch = spans.named("sessionflow.create_many")[0]
    clock.advance(timedelta(minutes=2))
    spans.clear()
    with spans.tracer.start_as_current_span("request"):
        assert mgr.expire_sessions(batch_size=50) == 200
    (sweep,) = spans.named("sessionflow.expire_sessions")
    assert sweep.parent is None  # a trace of its own, whatever was current
    assert sweep.attributes is not None
    assert sweep.attributes["sessionflow.links.count"] == 200
    assert len(sweep.links) == MAX_LINKS == 128
    linked = {(link.context.trace_id, link.context.span_id) for link in sweep.links}
    assert linked == {(create.context.trace_id, create.context.span_id),
                      (batch.context.trace_id, batch.context.span_id)}
    expired = [e for e in mgr.events(limit=10_000) if str(e.event) == "expired"]
    assert len(expired) == 200
    assert {_recorded(e) for e in expired} == {_ids(sweep)}
    assert _recorded(mgr.history(first.id)[-1]) == _ids(sweep)


def test_the_wakers_sweep_is_a_root_span_linked_to_the_last_writer(make_manager: MakeManager,
                                                                    spans: Spans) -> None:
    clock = ManualClock()
    mgr = make_manager(tracing=spans.tracing, clock=clock, default_ttl=timedelta(minutes=1))
    with spans.tracer.start_as_current_span("request"):
        session = mgr.create(user_id="u1", performer_id="u1")
    (create,) = spans.named("sessionflow.create")
    clock.advance(timedelta(minutes=2))
    spans.clear()
    with spans.tracer.start_as_current_span("application start"):
        mgr.start_timeouts()  # its first sweep runs now, in this thread
    mgr.stop_timeouts()
    (sweep,) = [s for s in spans.finished() if s.name in ("sessionflow.sweep", "sessionflow.expire_sessions")]
    assert sweep.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in sweep.links] == [
        (create.context.trace_id, create.context.span_id)]
    assert sweep.attributes is not None
    assert sweep.attributes["sessionflow.links.count"] == 1
    assert mgr.get(session.id).status == "expired"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_asyncio_facade_records_the_tasks_span_and_its_consumer_continues_it(
        spans: Spans, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    if backend == "postgres":
        from tests.support.backends import reset_postgres

        url = str(request.getfixturevalue("postgres_url"))
        reset_postgres(url)

    async def main() -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
        async with await AsyncSessionManager.open(url, tracing=spans.tracing) as manager:
            with spans.tracer.start_as_current_span("task") as task:
                session = await manager.create(user_id="u1", performer_id="u1")
                await manager.start(session.id, performer_id="u1")
            history = await manager.history(session.id)
            feed = await manager.events()

            async def handler(event: SessionEvent) -> None:
                await asyncio.sleep(0)

            assert await manager.consume("mailer", handler, follow=False) == 2
        return [_recorded(e) for e in history], [_recorded(e) for e in feed], _ids(task)[0]

    recorded, feed, trace_id = asyncio.run(main())
    writes = [_ids(spans.named(f"sessionflow.{name}")[0]) for name in ("create", "start")]
    assert recorded == writes == feed
    assert {t for t, _ in recorded} == {trace_id}
    handled = spans.named("sessionflow.feed.process")  # the asyncio consumer continues the writers' trace
    assert [(_ids(s)[0], format_span_id(s.parent.span_id) if s.parent else None) for s in handled] == writes


@pytest.mark.parametrize("traceparent", [
    "", "00", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # another version
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", "x" * 100_000, 7, None,
])
def test_a_hostile_traceparent_is_refused(traceparent: Any) -> None:
    with pytest.raises(ValueError, match="traceparent"):
        TraceContext(traceparent=traceparent)


@pytest.mark.parametrize("tracestate", ["", "a" * 513, "rojo=1\ncongo=2", "é=1", 5])
def test_a_hostile_tracestate_is_refused(tracestate: Any) -> None:
    with pytest.raises(ValueError, match="tracestate"):
        TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate=tracestate)
