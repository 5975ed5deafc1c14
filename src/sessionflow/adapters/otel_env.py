"""A process's OpenTelemetry from its environment: the SDK when ``OTEL_*`` asks for it, and the trace a
``TRACEPARENT`` variable continues. What the command line, ``sessionflow worker`` and ``sessionflow serve``
run inside (:func:`process_telemetry`).

- **The SDK** is configured (by the SDK itself: :mod:`sessionflow.adapters.otel_sdk`) when the environment names
  an exporter — ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` or ``OTEL_LOGS_EXPORTER`` set to anything but
  ``none`` — or a configuration file (``OTEL_CONFIG_FILE``), unless ``OTEL_SDK_DISABLED=true``, and unless the
  process already has a tracer provider (run under ``opentelemetry-instrument``, say: that one is kept). Without
  ``opentelemetry-sdk`` installed, one warning says what to install; a configuration the SDK refuses (an
  exporter that is not installed) is one warning too. Nothing stops for it.
- **The parent** of the operations' spans, for a one-shot command, is the span ``TRACEPARENT`` (with
  ``TRACESTATE``, and ``BAGGAGE``) names, extracted by the process's propagators (``OTEL_PROPAGATORS``; W3C trace
  context by default), when spans are recorded at all (an SDK configured). A malformed ``TRACEPARENT`` is
  ignored, as W3C says: the operations start a trace of their own.
- When neither applies, nothing of OpenTelemetry is imported: the decision reads the environment alone.

:func:`enter_carried_context` does the same for a request's headers (the HTTP service's middleware, where
FastAPI does not trace requests itself).

On exit the providers configured here are shut down: the spans still queued are exported (a graceful stop of
``worker`` or ``serve``, on SIGTERM, included).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib.util import find_spec
from typing import Any, Final

__all__ = ["INSTALL_HINT", "PARENT_VARIABLES", "continued_context", "enter_carried_context", "process_telemetry",
           "sdk_requested", "start_sdk"]

logger = logging.getLogger("sessionflow.otel")

#: The variables an environment carries a trace context in, and the propagation field each stands for.
PARENT_VARIABLES: Final = {"TRACEPARENT": "traceparent", "TRACESTATE": "tracestate", "BAGGAGE": "baggage"}
#: What to install for the SDK, as the warning names it.
INSTALL_HINT: Final = "pip install 'sessionflow[otel]' opentelemetry-sdk"
_EXPORTERS: Final = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER")
_TRACE_MODULE: Final = "opentelemetry.trace"


def sdk_requested(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for the SDK: an exporter other than ``none`` or ``OTEL_CONFIG_FILE``, and not
    ``OTEL_SDK_DISABLED=true``."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_CONFIG_FILE", "").strip():
        return True
    for name in _EXPORTERS:
        names = {part.strip().lower() for part in environ.get(name, "").split(",")} - {""}
        if names - {"none"}:
            return True
    return False


def _provider_configured() -> bool:
    """Whether the process already set a tracer provider (without importing OpenTelemetry to find out)."""
    if _TRACE_MODULE not in sys.modules:
        return False
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def start_sdk(environ: Mapping[str, str]) -> Any | None:
    """Configure the SDK if ``environ`` asks for it and the process has no tracer provider yet; returns what to
    shut down (:class:`~sessionflow.adapters.otel_sdk.ConfiguredSdk`), or ``None``. Never raises: a missing
    SDK or a refused configuration is one warning on the ``sessionflow.otel`` logger."""
    if not sdk_requested(environ) or _provider_configured():
        return None
    if find_spec("opentelemetry") is None or find_spec("opentelemetry.sdk") is None:
        logger.warning("OpenTelemetry is asked for (OTEL_* variables) but its SDK is not installed: no telemetry "
                       "is exported (%s)", INSTALL_HINT)
        return None
    try:
        from sessionflow.adapters.otel_sdk import configure_sdk

        return configure_sdk()
    except Exception as error:  # an exporter named but not installed, a malformed variable...
        logger.warning("OpenTelemetry is not configured: %s: %s", type(error).__name__,
                       " ".join(str(error).split()) or "no detail")
        return None


def continued_context(environ: Mapping[str, str]) -> Any | None:
    """The OpenTelemetry context of ``TRACEPARENT`` (and ``TRACESTATE``, ``BAGGAGE``) when it is set and spans
    are recorded (a tracer provider is configured), else ``None`` — also for a malformed value, which the
    propagator ignores (the context then holds no parent span). Imports OpenTelemetry only in the first case."""
    carrier = {field: environ[name] for name, field in PARENT_VARIABLES.items() if environ.get(name)}
    if "traceparent" not in carrier or not _provider_configured():
        return None
    from opentelemetry import propagate

    return propagate.extract(carrier)


def enter_carried_context(carrier: Mapping[str, str]) -> Callable[[], None] | None:
    """Make the trace context ``carrier`` holds (its ``traceparent``, ``tracestate`` and ``baggage`` fields, read
    by the process's propagators) the current one, unless a span is current already (an instrumentation made
    one) or there is no ``traceparent``; returns the function that puts the previous context back, or ``None``
    when nothing was done. A malformed ``traceparent`` gives a context without a parent span. Imports
    OpenTelemetry: for a process that has (the HTTP service's middleware checks first)."""
    if "traceparent" not in carrier:
        return None
    from opentelemetry import context, propagate, trace

    if trace.get_current_span().get_span_context().is_valid:
        return None
    token = context.attach(propagate.extract(carrier))
    return lambda: context.detach(token)


@contextlib.contextmanager
def process_telemetry(environ: Mapping[str, str], *, continue_trace: bool = True) -> Iterator[None]:
    """Run the block with the SDK configured from ``environ`` (if it asks) and, when ``continue_trace``, inside
    the trace its ``TRACEPARENT`` continues; then detach that context and shut down the providers configured
    here (flushing their spans). With neither asked for, nothing of OpenTelemetry is imported."""
    sdk = start_sdk(environ)
    context = continued_context(environ) if continue_trace else None
    token = None
    if context is not None:
        from opentelemetry import context as otel_context

        token = otel_context.attach(context)
    try:
        yield
    finally:
        if token is not None:
            from opentelemetry import context as otel_context

            otel_context.detach(token)
        if sdk is not None:
            sdk.shutdown()
