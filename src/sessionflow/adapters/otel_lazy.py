"""``LazyOtelTracing``: the managers' default tracing, which imports OpenTelemetry only once the process has.

A process that never imported ``opentelemetry.trace`` cannot have configured a tracer provider (configuring
the SDK imports it), so nobody could record sessionflow's spans: :meth:`LazyOtelTracing.active` then answers
``False`` from one look at ``sys.modules``, and nothing of OpenTelemetry is imported — in a library process, a
CLI command, a test run. Once the process has imported it (the application configured the SDK, FastAPI
imported the API), the first operation builds :class:`~sessionflow.adapters.otel.OtelTracing` and asks it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sessionflow.application.tracing import Span
from sessionflow.domain.models import TraceContext

if TYPE_CHECKING:
    from sessionflow.adapters.otel import OtelTracing

__all__ = ["LazyOtelTracing"]

_MODULE = "opentelemetry.trace"


class LazyOtelTracing:
    """:class:`~sessionflow.adapters.otel.OtelTracing`, built when the process has imported OpenTelemetry."""

    def __init__(self) -> None:
        self._real: OtelTracing | None = None
        self._missing = False
        self._lock = threading.Lock()

    def _load(self) -> OtelTracing | None:
        with self._lock:
            if self._real is None and not self._missing:
                try:
                    from sessionflow.adapters.otel import OtelTracing
                except ImportError:  # an unrelated 'opentelemetry' without the API's trace module
                    self._missing = True
                else:
                    self._real = OtelTracing()
            return self._real

    def active(self) -> bool:
        if _MODULE not in sys.modules:
            return False
        real = self._real if self._real is not None else self._load()
        return real is not None and real.active()

    def span(self, name: str, attributes: Mapping[str, Any], *, parent: TraceContext | None = None,
             root: bool = False) -> AbstractContextManager[Span]:
        real = self._real if self._real is not None else self._load()
        if real is None:
            raise RuntimeError("OpenTelemetry is not available")  # active() said so: never asked then
        return real.span(name, attributes, parent=parent, root=root)

    def carrier(self) -> TraceContext | None:
        """The current span's context; ``None`` at once (nothing imported) in a process that never imported
        OpenTelemetry: no span can be current there."""
        if _MODULE not in sys.modules:
            return None
        real = self._real if self._real is not None else self._load()
        return None if real is None else real.carrier()

    def link(self, contexts: Sequence[TraceContext]) -> None:
        if self._real is not None:
            self._real.link(contexts)

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        if self._real is not None:
            self._real.annotate(attributes)

    def __repr__(self) -> str:
        return f"LazyOtelTracing(loaded={self._real is not None})"
