"""Tracing: a span for every public operation of the managers, through a small port.

The application knows spans only through :class:`Tracing` (an adapter implements it over OpenTelemetry:
:class:`sessionflow.adapters.otel.OtelTracing`); a manager built without one (``tracing=None``) calls nothing.
:func:`traced` wraps a facade method: one span per call, named ``sessionflow.<operation>``, with the attributes
of :data:`ATTRIBUTES` known before the call (the session id, the event), those the write pipeline adds while it
runs (the state it left, through :meth:`Tracing.annotate`) and those of its result (the session's id, lifecycle,
version and state after it); a :class:`~sessionflow.errors.SessionflowError` sets the span's status to error
with its ``code``. The store's append is a child span (``sessionflow.store.append``), opened by
:class:`~sessionflow.application.delivery.Delivery`.

The trace crosses the store: each event a write appends records the W3C Trace Context of the span current
when it was built (:meth:`Tracing.carrier`, in :attr:`~sessionflow.SessionEvent.trace_context`); a consumer's span
for the event is a child of it (``parent=`` of :meth:`Tracing.span`), and a sweep's span — a root of its own
(``root=True``) — links to the last writers of the sessions it expired (:meth:`Tracing.link`, at most
:data:`MAX_LINKS`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, Protocol, TypeVar, cast

from sessionflow.domain.models import Session, TraceContext

__all__ = ["ATTRIBUTES", "MAX_LINKS", "Span", "Tracing", "in_span", "session_attributes", "store_kind", "traced"]

#: The most links one span gets (a sweep's to the last writers of the sessions it expired; OpenTelemetry's SDK
#: keeps 128 links per span by default, too). ``sessionflow.links.count`` tells how many there were to make.
MAX_LINKS: Final = 128

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: The span attributes sessionflow sets, and what each holds. Names follow OpenTelemetry's semantic conventions
#: where one exists (``db.system.name``, ``error.type``); the others are ``sessionflow.*``.
ATTRIBUTES: Final[Mapping[str, str]] = {
    "sessionflow.operation": "the manager method: create, start, send, list, sweep, ...",
    "sessionflow.session.id": "the session's id (a create's: the new session's, once made)",
    "sessionflow.event": "the event sent (send's event; a named transition's name)",
    "sessionflow.lifecycle": "the session's lifecycle name",
    "sessionflow.lifecycle.version": "its version",
    "sessionflow.state.from": "the state the write was decided on",
    "sessionflow.state.to": "the state after the operation",
    "sessionflow.version": "the session's version after the operation",
    "sessionflow.batch.size": "items of a batch (create_many, send_many), or events of an append",
    "sessionflow.result.count": "sessions or events a read returned, sessions a sweep or purge changed",
    "sessionflow.idempotency.replayed": "true when a keyed write was answered from its stored key",
    "sessionflow.outcome": "ok, or the error's code",
    "sessionflow.links.count": "a sweep's span: the sessions it expired, whose last writers it links to "
                               "(at most 128 links, to those that recorded a trace context)",
    "db.system.name": "the store: sqlite, postgresql, redis or memory",
    "error.type": "the error's class name, on failure",
}


class Span(Protocol):
    """One open span: attributes may be added until it ends."""

    def set(self, attributes: Mapping[str, Any]) -> None:
        """Add ``attributes`` (values: str, bool, int or float)."""
        ...

    def fail(self, error: BaseException, code: str) -> None:
        """Mark the span failed by ``error`` (its ``code``: a :class:`SessionflowError`'s, or ``"error"``)."""
        ...


class Tracing(Protocol):
    """Opens spans (the port an OpenTelemetry adapter implements)."""

    def active(self) -> bool:
        """Whether spans are recorded now (false: :func:`traced` calls through with nothing else done)."""
        ...

    def span(self, name: str, attributes: Mapping[str, Any], *, parent: TraceContext | None = None,
             root: bool = False) -> AbstractContextManager[Span]:
        """A new span, current while the block runs: a child of ``parent`` (a context an event recorded) when
        given, else a root span (a new trace) with ``root``, else a child of the current span."""
        ...

    def annotate(self, attributes: Mapping[str, Any]) -> None:
        """Add ``attributes`` to the current span (nothing when there is none)."""
        ...

    def carrier(self) -> TraceContext | None:
        """The W3C Trace Context of the current span, to record with the events a write appends; ``None`` when
        there is no valid current span (or the process never imported the tracing library). Cheap when there is
        none: one look at the current span."""
        ...

    def link(self, contexts: Sequence[TraceContext]) -> None:
        """Add a link to each of ``contexts`` to the current span (nothing when there is none)."""
        ...


def in_span(tracing: Tracing, name: str, attributes: Mapping[str, Any], call: Callable[[], T], *,
            parent: TraceContext | None = None) -> T:
    """``call()`` in a new span ``name`` (a child of ``parent`` when given, see :meth:`Tracing.span`); an exception
    it raises fails the span (with its ``code``) and goes on."""
    with tracing.span(name, attributes, parent=parent) as span:
        try:
            return call()
        except BaseException as error:
            span.fail(error, str(getattr(error, "code", "error")))
            raise


def store_kind(store: object) -> str:
    """The ``db.system.name`` of a store: ``sqlite``, ``postgresql``, ``redis``, ``memory``, or ``other``."""
    name = type(store).__name__.lower()
    for part, kind in (("sqlite", "sqlite"), ("postgres", "postgresql"), ("redis", "redis"), ("memory", "memory")):
        if part in name:
            return kind
    return "other"


def session_attributes(session: Session) -> dict[str, Any]:
    """The attributes describing ``session`` as an operation left it."""
    return {"sessionflow.session.id": str(session.id), "sessionflow.lifecycle": session.lifecycle,
            "sessionflow.lifecycle.version": session.lifecycle_version, "sessionflow.state.to": str(session.status),
            "sessionflow.version": session.version}


def _result_attributes(result: Any) -> dict[str, Any]:
    if isinstance(result, Session):
        return session_attributes(result)
    if isinstance(result, list):
        return {"sessionflow.result.count": len(result)}
    if isinstance(result, bool):
        return {}
    if isinstance(result, int):
        return {"sessionflow.result.count": result}
    counted = getattr(result, "expired", None)
    if isinstance(counted, int):
        return {"sessionflow.result.count": counted}
    return {}


def traced(operation: str, *, event: str | None = None, root: bool = False) -> Callable[[F], F]:
    """Wrap a manager method in a span ``sessionflow.<operation>`` (the manager's ``_tracing``, when active).

    ``event``: the event a named transition sends (``send``'s is its second argument). ``root``: the span starts
    a trace of its own rather than continuing the caller's (the sweeps: a waker's timer is nobody's child). The
    wrapper keeps the method's signature (``functools.wraps``)."""

    def wrap(method: F) -> F:
        parameters = list(inspect.signature(method).parameters)
        has_session = "session_id" in parameters
        has_event = event is None and "event" in parameters
        has_items = "items" in parameters
        name = f"sessionflow.{operation}"

        @functools.wraps(method)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            tracing: Tracing | None = self._tracing
            if tracing is None or not tracing.active():
                return method(self, *args, **kwargs)
            attributes: dict[str, Any] = {"sessionflow.operation": operation,
                                          "db.system.name": self._store_kind}
            if has_session or has_event or has_items:
                bound = dict(zip(parameters[1:], args, strict=False))
                bound.update(kwargs)
                if has_session and bound.get("session_id") is not None:
                    attributes["sessionflow.session.id"] = str(bound["session_id"])
                if has_event and isinstance(bound.get("event"), str):
                    attributes["sessionflow.event"] = bound["event"]
                if has_items and isinstance(bound.get("items"), list | tuple):
                    attributes["sessionflow.batch.size"] = len(bound["items"])
            if event is not None:
                attributes["sessionflow.event"] = event
            with tracing.span(name, attributes, root=root) as span:
                try:
                    result = method(self, *args, **kwargs)
                except BaseException as error:
                    span.fail(error, str(getattr(error, "code", "error")))
                    raise
                found = _result_attributes(result)
                found["sessionflow.outcome"] = "ok"
                span.set(found)
                return result

        return cast("F", run)

    return wrap
