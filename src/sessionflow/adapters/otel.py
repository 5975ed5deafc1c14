"""``OtelTracing``: the tracing port (:mod:`sessionflow.application.tracing`) over the OpenTelemetry API.

Needs ``opentelemetry-api`` (the ``otel`` extra). Spans go to the global tracer provider, which an application
configures with the OpenTelemetry SDK (``opentelemetry-sdk``; ``sessionflow serve`` and ``sessionflow worker``
configure it from the standard ``OTEL_*`` variables when it is installed). Until a provider is set, the API's
provider records nothing, and :meth:`OtelTracing.active` says so: the managers then open no span at all, so the
extra costs nothing where nobody traces.

The W3C Trace Context an event records (:meth:`OtelTracing.carrier`) is written and read back through
OpenTelemetry's own W3C propagator (``TraceContextTextMapPropagator``, whatever propagator the application set
globally: the stored field is W3C's): a consumer's span for the event is a child of the writer's
(:meth:`OtelTracing.span` with ``parent=``), a sweep's root span links to the writers (:meth:`OtelTracing.link`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import ProxyTracerProvider, SpanContext, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sessionflow.domain.models import TRACESTATE_MAX, TraceContext

__all__ = ["OtelSpan", "OtelTracing"]

#: The instrumentation scope's name (the ``otel.scope.name`` of every span sessionflow makes).
SCOPE = "sessionflow"

_PROPAGATOR = TraceContextTextMapPropagator()


def _context_of(recorded: TraceContext) -> Context:
    """A context whose current span is the (remote) span ``recorded`` names."""
    fields = {"traceparent": recorded.traceparent}
    if recorded.tracestate is not None:
        fields["tracestate"] = recorded.tracestate
    return _PROPAGATOR.extract(fields)


def span_context_of(recorded: TraceContext) -> SpanContext:
    """The span context ``recorded`` names (invalid when OpenTelemetry cannot read it)."""
    return trace.get_current_span(_context_of(recorded)).get_span_context()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sessionflow")
    except PackageNotFoundError:  # a source tree on the path, not installed
        return "0+unknown"


class OtelSpan:
    """An OpenTelemetry span as the application's :class:`~sessionflow.application.tracing.Span`."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, attributes: Mapping[str, Any]) -> None:
        self.span.set_attributes(dict(attributes))

    def fail(self, error: BaseException, code: str) -> None:
        self.span.set_attributes({"error.type": type(error).__name__, "sessionflow.outcome": code})
        self.span.record_exception(error)
        self.span.set_status(Status(StatusCode.ERROR, f"{code}: {error}"[:500]))


class OtelTracing:
    """Spans through OpenTelemetry's global tracer provider (or the ``tracer_provider`` given)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._provider = tracer_provider
        self._tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=tracer_provider)
        #: The last span context :meth:`carrier` formatted, and what it gave (a write of many events, a sweep's
        #: batch, asks once per event under one span).
        self._carried: tuple[SpanContext, TraceContext | None] | None = None

    def active(self) -> bool:
        """True once a tracer provider is configured (the API's own proxy records nothing)."""
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        return not isinstance(provider, ProxyTracerProvider)

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any], *, parent: TraceContext | None = None,
             root: bool = False) -> Iterator[OtelSpan]:
        """A span, current while the block runs: a child of ``parent`` (a recorded context) when given, else a
        root with ``root``, else a child of the current span."""
        context = _context_of(parent) if parent is not None else Context() if root else None
        # Errors are recorded by OtelSpan.fail (with the error's code), not a second time by the API.
        with self._tracer.start_as_current_span(name, context=context, attributes=dict(attributes),
                                                record_exception=False, set_status_on_exception=False) as span:
            yield OtelSpan(span)

    def carrier(self) -> TraceContext | None:
        """The W3C Trace Context of the current span (``None``: no valid span is current), as the propagator
        writes it; a ``tracestate`` longer than 512 characters is left out (W3C lets a hop drop it)."""
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return None
        carried = self._carried
        if carried is not None and carried[0] is current:
            return carried[1]
        fields: dict[str, str] = {}
        _PROPAGATOR.inject(fields)
        parent = fields.get("traceparent")
        state = fields.get("tracestate") or None
        if state is not None and len(state) > TRACESTATE_MAX:
            state = None
        found = None if parent is None else TraceContext.trusted(traceparent=parent, tracestate=state)
        self._carried = (current, found)
        return found

    def link(self, contexts: Sequence[TraceContext]) -> None:
        """Link the current span to the span each of ``contexts`` names."""
        span = trace.get_current_span()
        if not span.is_recording():
            return
        for recorded in contexts:
            found = span_context_of(recorded)
            if found.is_valid:
                span.add_link(found)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(dict(attributes))

    def __repr__(self) -> str:
        return f"OtelTracing(active={self.active()})"
