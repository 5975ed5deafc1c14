"""The service honours an incoming ``traceparent``: through FastAPI's own server span where FastAPI makes one
(one server span, sessionflow's spans below it), else through :class:`TraceParentMiddleware` (sessionflow's
spans children of the caller's span). A process with a tracer provider is a subprocess: the global provider
can be set once per process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider

from sessionflow.entrypoints.http import tracecontext
from sessionflow.entrypoints.http.tracecontext import TraceParentMiddleware, install_trace_context
from tests.tracing.console import PARENT_SPAN_ID, TRACE_ID, TRACEPARENT, otel_env

ROOT = Path(__file__).resolve().parents[2]

_SERVE_TWO_REQUESTS = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
if sys.argv[1] == "older-fastapi":  # what a FastAPI without fastapi.telemetry does: no server span
    from fastapi.telemetry._asgi import NativeTelemetry
    from sessionflow.entrypoints.http import tracecontext
    NativeTelemetry.enabled = lambda self: False
    tracecontext.native_server_spans = lambda: False

from fastapi.testclient import TestClient
from sessionflow import SessionManager
from sessionflow.entrypoints.http import create_app

manager = SessionManager.in_memory()
session = manager.create(user_id="alice", performer_id="alice")
exporter.clear()
with TestClient(create_app(manager, metrics=False)) as client:
    assert client.get(f"/sessions/{session.id}", headers={"traceparent": sys.argv[2]}).status_code == 200
    assert client.get(f"/sessions/{session.id}").status_code == 200
print(json.dumps([{"name": s.name, "kind": s.kind.name, "trace": format(s.context.trace_id, "032x"),
                   "id": format(s.context.span_id, "016x"),
                   "parent": format(s.parent.span_id, "016x") if s.parent else None}
                  for s in exporter.get_finished_spans()]))
"""


def _served_spans(fastapi: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", _SERVE_TWO_REQUESTS, fastapi, TRACEPARENT], env=otel_env(),
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    spans: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return spans


def _above(span: dict[str, Any], spans: list[dict[str, Any]]) -> list[str]:
    by_id = {s["id"]: s for s in spans}
    names, parent = [], span["parent"]
    while parent in by_id:
        names.append(by_id[parent]["name"])
        parent = by_id[parent]["parent"]
    return names


def test_fastapis_server_span_is_the_parent_of_the_operations() -> None:
    spans = _served_spans("this-fastapi")
    first, second = [s for s in spans if s["name"] == "sessionflow.get"]
    servers = [s for s in spans if s["kind"] == "SERVER"]
    assert len(servers) == 2  # one a request, FastAPI's: the service adds none
    traced = next(s for s in servers if s["trace"] == TRACE_ID)
    assert traced["parent"] == PARENT_SPAN_ID
    assert traced["name"] == "GET /sessions/{session_id}"
    assert first["trace"] == TRACE_ID
    assert traced["name"] in _above(first, spans)
    assert second["trace"] != TRACE_ID
    assert "GET /sessions/{session_id}" in _above(second, spans)


def test_without_fastapis_spans_the_middleware_continues_the_trace() -> None:
    spans = _served_spans("older-fastapi")
    assert [s for s in spans if s["kind"] == "SERVER"] == []
    first, second = [s for s in spans if s["name"] == "sessionflow.get"]
    assert (first["trace"], first["parent"]) == (TRACE_ID, PARENT_SPAN_ID)
    assert second["trace"] != TRACE_ID
    assert second["parent"] is None


def test_the_middleware_is_added_only_where_fastapi_has_no_server_spans(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracecontext.native_server_spans()  # the FastAPI installed here makes its own
    assert install_trace_context(FastAPI()) is False
    monkeypatch.setattr(tracecontext, "native_server_spans", lambda: False)
    app = FastAPI()
    assert install_trace_context(app) is True
    assert [m.cls for m in app.user_middleware] == [TraceParentMiddleware]


def _seen_parent(headers: list[tuple[bytes, bytes]], current: trace.Span | None = None) -> trace.SpanContext:
    """The span context current inside the middleware's app, for a request with ``headers``."""
    seen: list[trace.SpanContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())

    async def nothing() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def ignore(message: Any) -> None:
        return None

    scope = {"type": "http", "headers": headers}
    token = context.attach(trace.set_span_in_context(current)) if current is not None else None
    try:
        asyncio.run(TraceParentMiddleware(app)(scope, nothing, ignore))
    finally:
        if token is not None:
            context.detach(token)
    return seen[0]


def test_the_middleware_reads_the_header_and_leaves_a_current_span_alone() -> None:
    header = [(b"traceparent", TRACEPARENT.encode()), (b"tracestate", b"vendor=1")]
    parent = _seen_parent(header)
    assert (format(parent.trace_id, "032x"), format(parent.span_id, "016x")) == (TRACE_ID, PARENT_SPAN_ID)
    assert parent.is_remote
    assert parent.trace_state.get("vendor") == "1"
    assert not _seen_parent([(b"traceparent", b"00-malformed-01")]).is_valid  # ignored, as W3C says
    assert not _seen_parent([]).is_valid
    provider = TracerProvider()
    try:
        outer = provider.get_tracer("instrumentation").start_span("made by an instrumentation")
        assert _seen_parent(header, current=outer) == outer.get_span_context()
        outer.end()
    finally:
        provider.shutdown()
