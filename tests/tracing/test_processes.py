"""What tracing costs a process that does not trace — nothing of OpenTelemetry imported — and the default
tracing of ``SessionManager`` once the process configures the SDK; the asyncio facade's spans are children of
the awaiting task's span; one trace runs from a writer in one process to a consumer in another."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sessionflow import AsyncSessionManager
from tests.tracing.conftest import Spans

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_library_process_that_does_not_trace_imports_no_opentelemetry(tmp_path: Path) -> None:
    out = _run(f"""
import sys
from sessionflow import SessionManager
with SessionManager.open("sqlite:///{tmp_path / 'x.db'}") as m:
    s = m.create(user_id="u1", performer_id="u1", idempotency_key="k")
    m.start(s.id, performer_id="u1")
    m.list(); m.history(s.id); m.expire_sessions()
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
""")
    assert out.strip() == "[]"


def test_the_default_tracing_follows_the_sdk_the_process_configures(tmp_path: Path) -> None:
    out = _run(f"""
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sessionflow import SessionManager
m = SessionManager.open("sqlite:///{tmp_path / 'x.db'}")
m.create(user_id="u1", performer_id="u1")  # before any provider: nothing recorded
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
m.create(user_id="u2", performer_id="u2")
m.close()
print([s.name for s in exporter.get_finished_spans()])
""")
    assert out.strip() == "['sessionflow.store.append', 'sessionflow.create']"


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_the_asyncio_facade_spans_are_children_of_the_awaiting_task(spans: Spans, backend: str,
                                                                    tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    url = {"memory": None, "sqlite": f"sqlite:///{tmp_path / 'a.db'}"}.get(backend)
    if backend == "postgres":
        from tests.support.backends import reset_postgres

        url = str(request.getfixturevalue("postgres_url"))
        reset_postgres(url)

    async def main() -> tuple[int, list[int]]:
        manager = (AsyncSessionManager.in_memory(tracing=spans.tracing) if url is None
                   else await AsyncSessionManager.open(url, tracing=spans.tracing))
        async with manager:
            with spans.tracer.start_as_current_span("task") as task:
                session = await manager.create(user_id="u1", performer_id="u1")
                await manager.start(session.id, performer_id="u1")
        parents = [s.parent.span_id for s in spans.finished() if s.name in ("sessionflow.create",
                                                                             "sessionflow.start") and s.parent]
        return task.get_span_context().span_id, parents

    task_id, parents = asyncio.run(main())
    assert parents == [task_id, task_id]


def test_one_trace_runs_from_the_writer_through_the_store_to_a_consumer_in_another_process(
        spans: Spans, tmp_path: Path) -> None:
    """A span around ``start`` in this process; the event it committed; a consumer in another process (the
    default tracing, the SDK configured there): its handler's span is in the writer's trace, a child of the
    ``sessionflow.start`` span."""
    from sessionflow import SessionManager

    url = f"sqlite:///{tmp_path / 'chain.db'}"
    with SessionManager.open(url, tracing=spans.tracing) as manager:
        session = manager.create(user_id="u1", performer_id="u1")
        spans.clear()
        with spans.tracer.start_as_current_span("handle order 7731") as request:
            manager.start(session.id, performer_id="u1")
    (start,) = spans.named("sessionflow.start")
    out = _run(f"""
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sessionflow import SessionManager
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
inside = []
def handler(event):
    current = trace.get_current_span().get_span_context()
    inside.append([event.version, format(current.trace_id, "032x")])
with SessionManager.open("{url}") as m:
    m.consume("mailer", handler, follow=False)
spans = [[s.attributes["sessionflow.version"], format(s.context.trace_id, "032x"),
          format(s.parent.span_id, "016x") if s.parent else None]
         for s in exporter.get_finished_spans() if s.name == "sessionflow.feed.process"]
print(json.dumps({{"spans": spans, "inside": inside}}))
""")
    found = json.loads(out.strip().splitlines()[-1])
    trace_id = format(request.get_span_context().trace_id, "032x")
    started = [[v, t, p] for v, t, p in found["spans"] if v == 2]
    assert started == [[2, trace_id, format(start.context.span_id, "016x")]]
    assert [2, trace_id] in found["inside"]  # the handler ran inside that span
    assert start.parent is not None
    assert start.parent.span_id == request.get_span_context().span_id
