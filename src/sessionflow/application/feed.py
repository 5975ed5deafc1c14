"""The global event feed: every stored event in commit order, and named consumers that follow it.

Each event gets a ``position`` when it is committed (the store assigns it): an integer increasing in commit
order across all sessions, so a reader that has seen position ``n`` will never see an event appear below it.
:meth:`Feed.events` reads a page after a position. A *consumer* is a name under which the store keeps the
position of the last event handled: :meth:`Feed.consume` hands each later event to a handler and stores the
position only after the handler returned, so a consumer that crashes (an exception, a restart, a SIGKILL)
resumes after the last stored position and sees again the events it had not finished: delivery is
at-least-once, and a handler must be idempotent (``event.record_id`` identifies an event for good).

Between empty reads a consumer that follows the feed waits for a change notice (a ``ChangeWatcher`` from
the manager's ``_new_watcher()``: PostgreSQL's ``NOTIFY``, SQLite's ``data_version``) or, without one, polls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from sessionflow.application.ports import Clock, EventStore
from sessionflow.application.tracing import Tracing, in_span
from sessionflow.application.validation import check_int
from sessionflow.domain.models import SessionEvent
from sessionflow.domain.values import validate_identifier
from sessionflow.errors import InvalidInput

__all__ = ["MAX_PAGE", "MAX_POSITION", "PROCESS_SPAN", "ConsumerOptions", "Feed", "Handler", "check_position",
           "consumer_options", "process_attributes", "read_events"]

#: The largest page :meth:`Feed.events` returns, and the largest batch a consumer reads.
MAX_PAGE = 10_000
#: The largest position (a signed 64-bit integer).
MAX_POSITION = 2**63 - 1
#: Handles one event; what it returns is ignored, an exception stops the consumer.
Handler = Callable[[SessionEvent], object]


def check_position(value: Any, field: str = "after") -> int:
    """A feed position: an integer from 0 (before the first event) to :data:`MAX_POSITION`; anything else is
    :class:`~sessionflow.errors.InvalidInput` naming ``field`` (a store's driver could not even bind a larger
    one)."""
    return check_int(value, field, 0, MAX_POSITION)


def read_events(store: EventStore, after: Any, limit: Any, user_id: Any = None) -> list[SessionEvent]:
    """Up to ``limit`` (at most :data:`MAX_PAGE`) events of ``store`` with a position above ``after``, in position
    order (with ``user_id``: only the events of that user's sessions), every argument checked first: the one
    way into a store's feed for callers outside the engine (the manager's :meth:`Feed.events`, the HTTP
    routes). A bad one is :class:`~sessionflow.errors.InvalidInput` naming it, before the store is asked."""
    position = check_position(after)
    page = check_int(limit, "limit", 1, MAX_PAGE)
    user = None if user_id is None else validate_identifier(user_id, "user_id")
    return store.read_events(position, page, user_id=user)


def check_poll_interval(value: Any) -> float:
    """Seconds between reads of a consumer that finds nothing new: a number above 0, at most an hour."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise InvalidInput("poll_interval", "must be a number of seconds above 0 and at most 3600")
    return float(value)


#: The span of a consumer's handling of one event.
PROCESS_SPAN = "sessionflow.feed.process"


def process_attributes(name: str, event: SessionEvent) -> dict[str, Any]:
    """The attributes of the span of consumer ``name`` handling ``event``: OpenTelemetry's messaging attributes
    and the event's."""
    return {"messaging.system": "sessionflow", "messaging.operation.type": "process",
            "messaging.operation.name": "process", "messaging.destination.name": "sessionflow.feed",
            "messaging.consumer.group.name": name, "messaging.message.id": str(event.record_id),
            "sessionflow.session.id": str(event.session_id), "sessionflow.event": str(event.event),
            "sessionflow.version": event.version, "sessionflow.feed.position": event.position or 0}


class ConsumerOptions(NamedTuple):
    """A consumer's arguments, checked (see :func:`consumer_options`)."""

    name: str
    batch_size: int
    poll_interval: float
    max_events: int | None


def consumer_options(name: Any, handler: Any, batch_size: Any, poll_interval: Any, max_events: Any, stop: Any,
                     stop_type: type) -> ConsumerOptions:
    """The arguments of a consumer (``consume`` of the synchronous and of the asyncio facade), checked in one
    place: :class:`~sessionflow.errors.InvalidInput` names the first bad one, before anything is read."""
    name = validate_identifier(name, "name")
    if not callable(handler):
        raise InvalidInput("handler", "expected a callable taking one SessionEvent")
    batch_size = check_int(batch_size, "batch_size", 1, MAX_PAGE)
    interval = check_poll_interval(poll_interval)
    if max_events is not None:
        max_events = check_int(max_events, "max_events", 1, MAX_POSITION)
    if stop is not None and not isinstance(stop, stop_type):
        raise InvalidInput("stop", f"expected an {stop_type.__module__}.{stop_type.__qualname__}")
    return ConsumerOptions(name, batch_size, interval, max_events)


class Feed:
    """The feed of one store; see the module's docstring."""

    __slots__ = ("_clock", "_store", "_watcher", "tracing")

    def __init__(self, store: EventStore, clock: Clock, watcher: Callable[[], Any]) -> None:
        self._store = store
        self._clock = clock
        #: Returns the manager's change watcher (``subscribe(callback) -> unsubscribe``), or None.
        self._watcher = watcher
        #: Where each handled event's span goes (``None``: nowhere); set by the manager.
        self.tracing: Tracing | None = None

    def events(self, after: Any, limit: Any, user_id: Any = None) -> list[SessionEvent]:
        """Up to ``limit`` events with a position above ``after``, in position order (with ``user_id``: only
        the events of that user's sessions)."""
        return read_events(self._store, after, limit, user_id)

    def last_position(self) -> int:
        return self._store.last_position()

    def consumer_position(self, name: Any) -> int:
        return self._store.consumer_position(validate_identifier(name, "name"))

    def save_consumer_position(self, name: Any, position: Any) -> None:
        name = validate_identifier(name, "name")
        self._store.save_consumer_position(name, check_position(position, "position"), self._clock.now())

    def consume(self, name: Any, handler: Handler, *, batch_size: Any = 100, follow: bool = True,
                stop: threading.Event | None = None, poll_interval: Any = 0.5, max_events: Any = None) -> int:
        """Hand every event after the consumer's stored position to ``handler``, in position order; returns
        how many were handled. See :meth:`SessionManager.consume`."""
        name, batch_size, interval, max_events = consumer_options(name, handler, batch_size, poll_interval,
                                                                  max_events, stop, threading.Event)
        store = self._store
        position = store.consumer_position(name)
        handled = 0
        wake = threading.Event()
        unsubscribe: Callable[[], object] | None = None
        if follow:
            watcher = self._watcher()
            if watcher is not None:
                unsubscribe = watcher.subscribe(lambda _notice: wake.set())
        try:
            while not (stop is not None and stop.is_set()):
                wanted = batch_size if max_events is None else min(batch_size, max_events - handled)
                wake.clear()
                batch = store.read_events(position, wanted)
                if batch:
                    position, handled = self._handle(name, batch, handler, position, handled, stop)
                    if max_events is not None and handled >= max_events:
                        break
                    continue
                if not follow:
                    break
                if unsubscribe is None and stop is not None:
                    stop.wait(interval)
                else:
                    wake.wait(interval)
        finally:
            if unsubscribe is not None:
                unsubscribe()
        return handled

    @staticmethod
    def _traced(tracing: Tracing, name: str, event: SessionEvent, handler: Handler) -> None:
        """``handler(event)`` in a span ``sessionflow.feed.process`` (:func:`process_attributes`): a child of the
        span that wrote the event when it recorded one (its ``trace_context``), so the handler continues the
        writer's trace; else of the current span."""
        in_span(tracing, PROCESS_SPAN, process_attributes(name, event), lambda: handler(event),
                parent=event.trace_context)

    def _handle(self, name: str, batch: list[SessionEvent], handler: Handler, position: int, handled: int,
                stop: threading.Event | None) -> tuple[int, int]:
        """Hand ``batch`` to ``handler`` and store the position of the last event it returned from (also when
        it raises, before the exception goes on)."""
        start = position
        tracing = self.tracing
        try:
            for event in batch:
                if tracing is not None and tracing.active():
                    self._traced(tracing, name, event, handler)
                else:
                    handler(event)
                position = event.position if event.position is not None else position
                handled += 1
                if stop is not None and stop.is_set():
                    break
        finally:
            if position != start:
                self._store.save_consumer_position(name, position, self._clock.now())
        return position, handled
