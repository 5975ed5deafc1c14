"""The trace context in the files an event goes to: the audit trail and ``export`` write it (only for an event
that recorded one, so the lines of every other event are as they always were), the archive reads it back, a
line of before the field restores without one, and a hostile one is refused before anything is restored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessionflow import InvalidInput, SessionManager, TraceContext
from sessionflow.adapters.archive import read_archive, read_archive_file, restore_archive
from sessionflow.adapters.jsonl import JsonlAuditTrail, export
from tests.tracing.conftest import Spans

#: A line ``export`` wrote before events had a trace context (a created event of a session without a user).
OLD_LINE = ('{"record_id":"1ce1b990-e449-4af7-9e7d-a73d7483d2da","session_id":"12d4b258-e16f-4004-ad52-fa5143b53756",'
            '"version":1,"user_id":null,"performer_id":"alice","source":"sessionflow","event":"created","from":null,'
            '"to":"pending","timestamp":"2030-02-10T00:05:08.000Z","payload":{"expires_at":"2030-02-10T01:05:08.000Z",'
            '"file_paths":[],"max_expires_at":null,"metadata":{},"module_name":null,"ttl_seconds":3600.0,'
            '"user_id":null,"workspace_id":null}}\n')


def _lines(root: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(root.rglob("*.jsonl")) for line in path.read_text().splitlines()]


def test_export_and_the_trail_write_it_and_the_archive_reads_it_back(spans: Spans, tmp_path: Path) -> None:
    with SessionManager.in_memory(tracing=spans.tracing) as manager:
        manager.subscribe(JsonlAuditTrail(tmp_path / "trail"))
        with spans.tracer.start_as_current_span("request"):
            traced = manager.create(user_id="u1", performer_id="u1")
        with SessionManager(manager.store, owns_store=False, tracing=False) as untraced:
            untraced.subscribe(JsonlAuditTrail(tmp_path / "trail"))
            bare = untraced.create(user_id="u2", performer_id="u2")
        export(manager, tmp_path / "export")
        recorded = manager.history(traced.id)[0].trace_context
    assert recorded is not None
    for root in ("trail", "export"):
        lines = {str(line["session_id"]): line for line in _lines(tmp_path / root)}
        assert lines[str(traced.id)]["trace_context"] == {"traceparent": recorded.traceparent, "tracestate": None}
        assert "trace_context" not in lines[str(bare.id)]  # a line as it always was
        assert list(lines[str(traced.id)])[-1] == "trace_context"
    read = {h[0].session_id: h for h in read_archive(tmp_path / "export")}
    assert read[traced.id][0].trace_context == recorded
    assert read[bare.id][0].trace_context is None
    with SessionManager.in_memory(tracing=False) as fresh:
        assert restore_archive(fresh.store, tmp_path / "export") == 2
        assert fresh.history(traced.id)[0].trace_context == recorded


def test_a_line_of_before_the_field_restores_without_one(tmp_path: Path) -> None:
    folder = tmp_path / "archive" / "no-user" / "sessions"
    folder.mkdir(parents=True)
    (folder / "12d4b258-e16f-4004-ad52-fa5143b53756.jsonl").write_text(OLD_LINE)
    with SessionManager.in_memory() as manager:
        assert restore_archive(manager.store, tmp_path / "archive") == 1
        (event,) = manager.history("12d4b258-e16f-4004-ad52-fa5143b53756")
    assert event.trace_context is None
    assert event.performer_id == "alice"


@pytest.mark.parametrize("context", [
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'; DROP TABLE session_events; --"},
    {"traceparent": "00-" + "f" * 100_000},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "x" * 600},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "extra": 1},
    {"tracestate": "a=1"}, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", [], 3,
])
def test_a_hostile_trace_context_in_a_file_is_refused_and_nothing_is_restored(tmp_path: Path,
                                                                               context: object) -> None:
    folder = tmp_path / "archive" / "no-user" / "sessions"
    folder.mkdir(parents=True)
    line = json.loads(OLD_LINE)
    line["trace_context"] = context
    path = folder / "12d4b258-e16f-4004-ad52-fa5143b53756.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(InvalidInput, match=r"line 1: trace_context") as refused:
        read_archive_file(path)
    assert refused.value.field == "archive"
    with SessionManager.in_memory() as manager:
        with pytest.raises(InvalidInput):
            restore_archive(manager.store, tmp_path / "archive")
        assert manager.count() == 0


def test_the_value_is_checked_however_it_is_given() -> None:
    good = TraceContext(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tracestate="a=1")
    assert TraceContext.model_validate(good.model_dump(mode="json")) == good
    assert (good.trace_id, good.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    with pytest.raises(ValueError, match="traceparent"):
        TraceContext.model_validate({"traceparent": good.traceparent.upper()})


def test_the_http_feed_its_stream_and_its_schema_show_it(spans: Spans) -> None:
    import warnings

    from sessionflow.entrypoints.http import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*deprecated")
        from fastapi.testclient import TestClient

    with SessionManager.in_memory(tracing=spans.tracing) as manager:
        with spans.tracer.start_as_current_span("request"):
            session = manager.create(user_id="u1", performer_id="u1")
        recorded = manager.history(session.id)[0].trace_context
        assert recorded is not None
        client = TestClient(create_app(manager, metrics=False))
        (item,) = client.get("/events").json()["items"]
        assert item["trace_context"] == {"traceparent": recorded.traceparent, "tracestate": None}
        with client.stream("GET", "/events/stream", params={"follow": "false"}) as response:
            body = response.read().decode()
        (data,) = [json.loads(line.removeprefix("data: ")) for line in body.splitlines() if line.startswith("data: ")]
        assert data["trace_context"]["traceparent"] == recorded.traceparent
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert set(schemas["TraceContext"]["properties"]) == {"traceparent", "tracestate"}
        assert "trace_context" in schemas["SessionEvent"]["properties"]
