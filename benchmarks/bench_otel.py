"""What tracing costs: the durable lifecycle (create + start + complete per session, one thread) with OpenTelemetry
in four ways, interleaved round by round in one process, on SQLite (`NORMAL`) and on PostgreSQL (the
`lifecycle-postgres` benchmark's server, over loopback TCP).

* tracing off: ``SessionManager.open(..., tracing=False)``.
* API, no SDK (SQLite only): the default tracing in a process that imported OpenTelemetry but configured no
  tracer provider (what an application with the ``otel`` extra, or FastAPI's dependency, and no tracing set up
  runs): no span is made.
* SDK, no-op exporter: ``OtelTracing`` over an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` whose
  exporter drops the spans: every span made, sampled and handed to the processor (6 per session: three
  operations, and a store append under each).
* the SDK's own cost, the reference for sessionflow's share: the untraced manager (``tracing=False``) with the
  same six spans made by hand through the same provider around its calls — a span per operation with the
  attributes sessionflow gives it at its start and at its end, a store-append span inside it — so the
  difference between this contender and the previous one is what sessionflow itself adds to a traced write
  (deciding what to trace, its attributes, the trace context each event records).

Each contender has its own database (file, or PostgreSQL database).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.framework import Benchmark, Contender, Context, Section, Target
from benchmarks.workload import METADATA, MODULE, TTL, WORKSPACE, SessionflowLifecycle, user_for
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]

OFF = "tracing off"
API = "OpenTelemetry API, no SDK"
SDK = "SDK, no-op exporter"
HAND = "the same six spans by hand (SDK), untraced manager"


def _by_hand(manager: SessionManager, tracer: Any, kind: str) -> Callable[[int], None]:
    """``run(n)`` of the hand-made spans contender: what the SDK costs for the spans sessionflow makes."""
    start_span = tracer.start_as_current_span
    create, start, complete = manager.create, manager.start, manager.complete

    def traced(operation: str, session_id: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with start_span(f"sessionflow.{operation}", record_exception=False, set_status_on_exception=False,
                        attributes={"sessionflow.operation": operation, "db.system.name": kind,
                                    "sessionflow.session.id": session_id, "sessionflow.event": operation}) as span:
            with start_span("sessionflow.store.append", record_exception=False, set_status_on_exception=False,
                            attributes={"db.system.name": kind, "sessionflow.session.id": session_id,
                                        "sessionflow.batch.size": 1}):
                result = call(*args, **kwargs)
            span.set_attributes({"sessionflow.session.id": str(result.id), "sessionflow.lifecycle": "default",
                                 "sessionflow.lifecycle.version": 1, "sessionflow.state.to": str(result.status),
                                 "sessionflow.version": result.version, "sessionflow.outcome": "ok"})
            return result

    def run(n: int) -> None:
        for i in range(n):
            user = user_for(i)
            session = traced("create", "", create, user_id=user, workspace_id=WORKSPACE, module_name=MODULE,
                             metadata=METADATA, ttl=TTL, performer_id=user)
            sid = str(session.id)
            traced("start", sid, start, session.id, performer_id=user)
            traced("complete", sid, complete, session.id, performer_id=user)

    return run


def run(ctx: Context) -> Section:
    # Imported here, not at the module's top: the other benchmarks run in this process with OpenTelemetry
    # not imported (a library process without it), as the runner imports every module to list them.
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from sessionflow.adapters.otel import OtelTracing

    class _DroppingExporter(SpanExporter):
        """Counts the spans handed to it and keeps none."""

        def __init__(self) -> None:
            self.exported = 0

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            return None

    section = Section(name="otel", title="Tracing with OpenTelemetry", description=__doc__ or "")
    rounds = ctx.scale(7, 2)
    for store, kind, n in (("SQLite", "sqlite", ctx.scale(2000, 30)), ("PostgreSQL", "postgresql",
                                                                        ctx.scale(600, 20))):
        exporter = _DroppingExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        with contextlib.ExitStack() as stack:
            stack.callback(provider.shutdown)

            def url(name: str, kind: str = kind) -> str:
                if kind == "sqlite":
                    return f"sqlite:///{ctx.workdir / f'otel-{name}.db'}"
                return str(stack.enter_context(ctx.postgres.fresh_database(f"sfbench_otel_{name}")))

            def manager(name: str, **options: object) -> SessionManager:
                return stack.enter_context(SessionManager.open(url(name), **options))

            workloads = {OFF: SessionflowLifecycle(manager("off", tracing=False)).run,
                         SDK: SessionflowLifecycle(manager("sdk", tracing=OtelTracing(tracer_provider=provider))).run,
                         HAND: _by_hand(manager("hand", tracing=False), provider.get_tracer("sessionflow"), kind)}
            if kind == "sqlite":
                workloads[API] = SessionflowLifecycle(manager("api")).run
            label = {key: f"{store}: sessionflow, {key}" if key != HAND else f"{store}: {key}" for key in workloads}
            ctx.log(f"  {store}: {n} sessions x {rounds} rounds")
            results = ctx.measure([Contender(label[key], "session", call) for key, call in workloads.items()],
                                  n, rounds)
            provider.force_flush()
        if exporter.exported < 12 * n:
            raise AssertionError(f"{store}: the two SDK contenders exported {exporter.exported} spans, fewer than "
                                 "6 per session each")
        figure = {key: section.add(results[label[key]], "throughput") for key in workloads}
        if API in figure:
            section.compare(figure[API], figure[OFF], "throughput", Target(">=", 0.95, "issue 31: within noise"))
        section.compare(figure[SDK], figure[OFF], "throughput", Target(">=", 0.9, "issue 31: at most 10% slower"))
        section.compare(figure[HAND], figure[OFF], "throughput", note="the SDK's own cost of the six spans")
        section.compare(figure[SDK], figure[HAND], "throughput",
                        Target(">=", 0.9, "sessionflow's share: at most 10%"),
                        note="sessionflow's own cost of a traced lifecycle, above the SDK's")
        section.notes.append(f"{store}: checked in the run, the two SDK contenders' exporter received "
                             f"{exporter.exported:,} spans (three operations and three store appends per session, "
                             "each).")
    return section


BENCHMARK = Benchmark(name="otel", title="Tracing with OpenTelemetry", run=run, order=97, needs_postgres=True,
                      summary="lifecycle on SQLite and PostgreSQL with tracing off, the API without SDK, the SDK with "
                              "a no-op exporter, and the SDK's own spans by hand")
