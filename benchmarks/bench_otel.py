"""What tracing costs: the durable SQLite lifecycle (create + start + complete per session, SQLite NORMAL) with
OpenTelemetry in three ways, interleaved round by round in one process.

* tracing off: ``SessionManager.open(..., tracing=False)``.
* API, no SDK: the default tracing in a process that imported OpenTelemetry but configured no tracer provider
  (what an application with the ``otel`` extra, or FastAPI's dependency, and no tracing set up runs): no span
  is made.
* SDK, no-op exporter: ``OtelTracing`` over an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` whose
  exporter drops the spans: every span made, sampled and handed to the processor (6 per session: three
  operations, and a store append under each).

Each contender has its own database file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from benchmarks.framework import Benchmark, Contender, Context, Section, Target
from benchmarks.workload import SessionflowLifecycle
from sessionflow import SessionManager

__all__ = ["BENCHMARK"]


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
    n = ctx.scale(2000, 30)
    exporter = _DroppingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with contextlib.ExitStack() as stack:
        stack.callback(provider.shutdown)

        def manager(name: str, **options: object) -> SessionManager:
            return stack.enter_context(SessionManager.open(f"sqlite:///{ctx.workdir / name}", **options))

        off = SessionflowLifecycle(manager("off.db", tracing=False))
        api = SessionflowLifecycle(manager("api.db"))
        sdk = SessionflowLifecycle(manager("sdk.db", tracing=OtelTracing(tracer_provider=provider)))
        contenders = [Contender("sessionflow, tracing off", "session", off.run),
                      Contender("sessionflow, OpenTelemetry API, no SDK", "session", api.run),
                      Contender("sessionflow, SDK, no-op exporter", "session", sdk.run)]
        ctx.log(f"  {n} sessions x {rounds} rounds")
        results = ctx.measure(contenders, n, rounds)
        provider.force_flush()
    if exporter.exported < 6 * n:
        raise AssertionError(f"the SDK contender exported {exporter.exported} spans, fewer than 6 per session")
    reference = section.add(results["sessionflow, tracing off"], "throughput")
    api_figure = section.add(results["sessionflow, OpenTelemetry API, no SDK"], "throughput")
    sdk_figure = section.add(results["sessionflow, SDK, no-op exporter"], "throughput")
    section.compare(api_figure, reference, "throughput", Target(">=", 0.95, "issue 31: within noise"))
    section.compare(sdk_figure, reference, "throughput", Target(">=", 0.9, "issue 31: at most 10% slower"))
    section.notes.append(f"Checked in the run: the SDK contender's exporter received {exporter.exported} spans "
                         "(three operations and three store appends per session).")
    return section


BENCHMARK = Benchmark(name="otel", title="Tracing with OpenTelemetry", run=run, order=97,
                      summary="SQLite lifecycle with tracing off, the API without SDK, the SDK with a no-op exporter")
