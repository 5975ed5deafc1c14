"""An incoming request's trace context: FastAPI's own server spans where FastAPI has them, else a small middleware.

FastAPI 0.165 and later trace every request themselves (``fastapi.telemetry``): once the process has a tracer
provider, each request is a server span (``GET /sessions/{session_id}``), a child of the span its
``traceparent`` header names, with FastAPI's operation spans (``fastapi.endpoint``...) below it; sessionflow's
operation spans are then descendants of the request's span, and the service adds no server span of its own.

An older FastAPI (the ``http`` extra allows some) makes none: :class:`TraceParentMiddleware` then extracts the
request's ``traceparent`` (with ``tracestate`` and ``baggage``, through the process's propagators) and makes it
the current context while the request is served, so sessionflow's spans are children of the caller's span
directly. It makes no server span (``opentelemetry-instrumentation-fastapi`` adds one), and does nothing when a
span is already current (such an instrumentation made one) or the process has not imported OpenTelemetry (no
one could record the spans).
"""

from __future__ import annotations

import sys
from importlib.util import find_spec
from typing import TYPE_CHECKING, Final

from sessionflow.adapters.otel_env import enter_carried_context

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TraceParentMiddleware", "install_trace_context", "native_server_spans"]

_TRACE_MODULE: Final = "opentelemetry.trace"
_FIELDS: Final = (b"traceparent", b"tracestate", b"baggage")


def native_server_spans() -> bool:
    """Whether the installed FastAPI makes its own server spans (it has ``fastapi.telemetry``)."""
    return find_spec("fastapi.telemetry") is not None


class TraceParentMiddleware:
    """ASGI middleware: serve an HTTP request inside the context of its ``traceparent`` header (see the
    module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _TRACE_MODULE not in sys.modules:
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", ()) if name.lower() in _FIELDS}
        restore = enter_carried_context(carrier)
        try:
            await self.app(scope, receive, send)
        finally:
            if restore is not None:
                restore()


def install_trace_context(app: FastAPI) -> bool:
    """Add :class:`TraceParentMiddleware` to ``app`` unless FastAPI traces requests itself; returns whether it
    was added."""
    if native_server_spans():
        return False
    app.add_middleware(TraceParentMiddleware)
    return True
