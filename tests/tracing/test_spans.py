"""Every public operation of the manager is a span with its attributes; the store's append is its child; a
failure sets the span's status — on every store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from sessionflow import IdempotencyKey, InvalidTransition, SessionManager
from sessionflow.testing import ManualClock
from tests.conftest import MakeManager
from tests.tracing.conftest import Spans


def _attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_each_write_is_a_span_under_the_callers_with_the_store_append_beneath(
        make_manager: MakeManager, spans: Spans, backend: str) -> None:
    mgr = make_manager(tracing=spans.tracing)
    with spans.tracer.start_as_current_span("request") as request:
        session = mgr.create(user_id="u1", performer_id="u1", file_paths=["a.md"])
        mgr.start(session.id, performer_id="u1")
        mgr.record_file(session.id, "a.md", performer_id="u1")
        mgr.complete(session.id, performer_id="u1")
    operations = [s for s in spans.finished() if s.name.startswith("sessionflow.") and "store" not in s.name]
    assert [s.name for s in operations] == ["sessionflow.create", "sessionflow.start", "sessionflow.record_file",
                                            "sessionflow.complete"]
    request_id = request.get_span_context().span_id
    assert all(s.parent is not None and s.parent.span_id == request_id for s in operations)
    appends = spans.named("sessionflow.store.append")
    assert len(appends) == 4
    assert [a.parent.span_id for a in appends if a.parent] == [s.context.span_id for s in operations]
    kind = {"memory": "memory", "sqlite": "sqlite", "postgres": "postgresql", "redis": "redis"}[backend]
    assert {_attributes(a)["db.system.name"] for a in appends} == {kind}
    start = _attributes(operations[1])
    assert start == {"sessionflow.operation": "start", "db.system.name": kind, "sessionflow.event": "start",
                     "sessionflow.session.id": str(session.id), "sessionflow.state.from": "pending",
                     "sessionflow.state.to": "in_progress", "sessionflow.version": 2,
                     "sessionflow.lifecycle": "session", "sessionflow.lifecycle.version": 1,
                     "sessionflow.outcome": "ok"}
    assert _attributes(operations[3])["sessionflow.state.to"] == "completed"
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.finished())


def test_a_refused_write_is_a_failed_span_with_its_code(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=spans.tracing)
    session = mgr.create(user_id="u1", performer_id="u1")
    spans.clear()
    with pytest.raises(InvalidTransition):
        mgr.complete(session.id, performer_id="u1")
    (failed,) = spans.named("sessionflow.complete")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description.startswith("invalid_transition: ")
    attributes = _attributes(failed)
    assert (attributes["error.type"], attributes["sessionflow.outcome"]) == ("InvalidTransition",
                                                                              "invalid_transition")
    assert [e.name for e in failed.events] == ["exception"]
    assert spans.named("sessionflow.store.append") == []  # refused before anything reached the store


def test_reads_batches_sweeps_and_keyed_writes(make_manager: MakeManager, spans: Spans) -> None:
    clock = ManualClock()
    mgr = make_manager(tracing=spans.tracing, clock=clock)
    made = mgr.create_many([{"user_id": "u1"}, {"user_id": "u2"}, {"user_id": "u3"}], performer_id="ops")
    (batch,) = spans.named("sessionflow.create_many")
    assert (_attributes(batch)["sessionflow.batch.size"], _attributes(batch)["sessionflow.result.count"]) == (3, 3)
    (append_many,) = spans.named("sessionflow.store.append_many")
    assert append_many.parent is not None
    assert append_many.parent.span_id == batch.context.span_id
    assert _attributes(append_many)["sessionflow.batch.size"] == 3
    assert len(mgr.list()) == 3
    assert _attributes(spans.named("sessionflow.list")[0])["sessionflow.result.count"] == 3
    mgr.history(made[0].id)
    assert _attributes(spans.named("sessionflow.history")[0])["sessionflow.session.id"] == str(made[0].id)
    handle = IdempotencyKey("k")
    mgr.start(made[0].id, performer_id="ops", idempotency_key="k")
    mgr.start(made[0].id, performer_id="ops", idempotency_key=handle)
    assert handle.replayed
    assert [_attributes(s)["sessionflow.idempotency.replayed"] for s in spans.named("sessionflow.start")] == [
        False, True]
    clock.advance(timedelta(hours=2))
    assert mgr.expire_sessions() == 3
    (sweep,) = spans.named("sessionflow.expire_sessions")
    assert _attributes(sweep)["sessionflow.result.count"] == 3


def test_no_span_without_tracing(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=False)
    with spans.tracer.start_as_current_span("request"):
        mgr.create(user_id="u1", performer_id="u1")
    assert [s.name for s in spans.finished()] == ["request"]


def test_the_facade_keeps_the_methods_signatures() -> None:
    import inspect

    assert "idempotency_key" in inspect.signature(SessionManager.start).parameters
    assert SessionManager.start.__doc__
    assert "pending" in SessionManager.start.__doc__


def test_a_consumer_handles_each_event_in_a_span_of_its_own(make_manager: MakeManager, spans: Spans) -> None:
    mgr = make_manager(tracing=spans.tracing)
    session = mgr.create(user_id="u1", performer_id="u1")
    mgr.start(session.id, performer_id="u1")
    spans.clear()
    seen: list[int] = []
    assert mgr.consume("mailer", lambda event: seen.append(event.version), follow=False) == 2
    handled = spans.named("sessionflow.feed.process")
    assert [_attributes(s)["sessionflow.version"] for s in handled] == [1, 2]
    first = _attributes(handled[0])
    assert (first["messaging.system"], first["messaging.consumer.group.name"], first["messaging.operation.type"],
            first["sessionflow.session.id"]) == ("sessionflow", "mailer", "process", str(session.id))
    assert first["messaging.message.id"] == str(mgr.history(session.id)[0].record_id)

    def refuse(event: Any) -> None:
        raise RuntimeError("the mail server is down")

    mgr.touch(session.id, performer_id="u1")
    spans.clear()
    with pytest.raises(RuntimeError):
        mgr.consume("mailer", refuse, follow=False)
    (failed,) = spans.named("sessionflow.feed.process")
    assert failed.status.status_code is StatusCode.ERROR
    assert _attributes(failed)["error.type"] == "RuntimeError"
