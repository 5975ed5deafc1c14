"""What tracing costs a process that does not trace — nothing of OpenTelemetry imported — and the default
tracing of ``SessionManager`` once the process configures the SDK; the asyncio facade's spans are children of
the awaiting task's span."""

from __future__ import annotations

import asyncio
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
