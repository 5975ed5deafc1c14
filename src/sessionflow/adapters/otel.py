"""``OtelTracing``: the tracing port (:mod:`sessionflow.application.tracing`) over the OpenTelemetry API.

Needs ``opentelemetry-api`` (the ``otel`` extra). Spans go to the global tracer provider, which an application
configures with the OpenTelemetry SDK (``opentelemetry-sdk``; ``sessionflow serve`` and ``sessionflow worker``
configure it from the standard ``OTEL_*`` variables when it is installed). Until a provider is set, the API's
provider records nothing, and :meth:`OtelTracing.active` says so: the managers then open no span at all, so the
extra costs nothing where nobody traces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, Status, StatusCode

__all__ = ["OtelSpan", "OtelTracing"]

#: The instrumentation scope's name (the ``otel.scope.name`` of every span sessionflow makes).
SCOPE = "sessionflow"


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

    def active(self) -> bool:
        """True once a tracer provider is configured (the API's own proxy records nothing)."""
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        return not isinstance(provider, ProxyTracerProvider)

    @contextmanager
    def span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[OtelSpan]:
        # Errors are recorded by OtelSpan.fail (with the error's code), not a second time by the API.
        with self._tracer.start_as_current_span(name, attributes=dict(attributes), record_exception=False,
                                                set_status_on_exception=False) as span:
            yield OtelSpan(span)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(dict(attributes))

    def __repr__(self) -> str:
        return f"OtelTracing(active={self.active()})"
