"""Prometheus metrics for a :class:`~sessionflow.SessionManager` (needs the ``metrics`` extra).

:class:`SessionflowMetrics` registers its metrics in a ``prometheus_client`` registry — the process-wide
default, or one the embedding program passes — and :meth:`SessionflowMetrics.instrument` attaches them to a
manager from the outside: a subscriber counts committed events, and thin wrappers around the manager's
public methods (on that one instance; the class is untouched) time sweeps and count the errors they raise.

- ``sessionflow_transitions_total`` (counter): committed events, by ``event``, ``source`` and ``target``.
- ``sessionflow_sessions`` (gauge): sessions (not deleted) by ``status``, read from the store at scrape time.
- ``sessionflow_expiry_lateness_seconds`` (histogram): each ``expired`` event's timestamp minus the deadline.
- ``sessionflow_sweep_duration_seconds`` (histogram): duration of each ``expire_sessions`` or ``sweep`` call.
- ``sessionflow_sweep_sessions`` (histogram): sessions expired by each ``expire_sessions`` or ``sweep`` call.
- ``sessionflow_concurrency_conflicts_total`` (counter): ``ConcurrencyConflict`` raised, by ``operation``.
- ``sessionflow_store_errors_total`` (counter): ``StoreError`` raised, by ``operation``.
- ``sessionflow_errors_total`` (counter): every ``SessionflowError`` raised, by ``operation`` and ``error``.
- ``sessionflow_store_command_seconds`` (histogram): each store operation's round trips, by ``operation``, from
  a store that reports them (the Redis store: ``append``, ``get``, ``query``, ``claim``, ``sweep``, ...).
- ``sessionflow_consumer_lag_events`` (gauge): the feed's head position minus a consumer's stored position, by
  ``consumer``, read at scrape time (:class:`_LagCollector`), for every consumer whose position the store keeps
  (wherever it runs), those named to the metrics and those that consume through the instrumented manager.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sessionflow.application.ports import CountsByStatus, ListsConsumers, ReportsLatency
from sessionflow.domain.models import EventType, SessionEvent, SessionStatus
from sessionflow.domain.values import validate_identifier
from sessionflow.errors import ConcurrencyConflict, InvalidInput, SessionflowError, StoreError

if TYPE_CHECKING:
    from sessionflow.application.manager import ManagerCore
    from sessionflow.application.ports import EventStore

__all__ = ["INSTRUMENTED_METHODS", "LATENESS_BUCKETS", "SWEEP_SIZE_BUCKETS", "SessionflowMetrics"]

logger = logging.getLogger("sessionflow.metrics")

#: The manager methods :meth:`SessionflowMetrics.instrument` wraps to count the errors they raise.
INSTRUMENTED_METHODS: Final = (
    "create", "start", "record_file", "add_note", "complete", "fail", "expire", "touch", "update", "delete",
    "get", "get_active", "list", "history", "count", "expire_sessions", "sweep",
)
#: The manager methods that name a feed consumer: one named there is added to the consumers whose lag is
#: reported.
_CONSUMER_METHODS: Final = ("consume", "save_consumer_position")
#: Seconds: from a millisecond (a waker on time) to an hour (a sweep-only design).
LATENESS_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                           300.0, 900.0, 3600.0)
#: Sessions expired by one sweep.
SWEEP_SIZE_BUCKETS: Final = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
_SWEEP_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                                  60.0)
#: Seconds: from 50 microseconds (a command on a local server) to 5 s (retries after a lost connection).
_STORE_LATENCY_BUCKETS: Final = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1, 0.25, 0.5, 1.0, 5.0)


class _StatusCollector(Collector):
    """Yields ``sessionflow_sessions{status}`` from the store's counts, at scrape time."""

    def __init__(self, owner: SessionflowMetrics, name: str) -> None:
        self._owner = owner
        self._name = name

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, "Sessions (not deleted) by status, read from the store at scrape "
                                 "time.", labels=["status"])

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        manager = self._owner.manager
        if manager is None:
            return [family]
        try:
            counts = _counts(manager)
        except StoreError:
            self._owner.store_errors.labels("scrape").inc()
            self._owner.errors.labels("scrape", "StoreError").inc()
            logger.warning("cannot read session counts for the metrics", exc_info=True)
            return [family]
        for status in SessionStatus:
            family.add_metric([status.value], counts.get(status, 0))
        return [family]


class _LagCollector(Collector):
    """Yields ``sessionflow_consumer_lag_events{consumer}``: the feed's last position minus the stored position
    of each consumer — every one the store keeps a position for (:class:`ListsConsumers`), wherever it runs, and
    each watched one — read at scrape time."""

    def __init__(self, owner: SessionflowMetrics, name: str) -> None:
        self._owner = owner
        self._name = name

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, "Events of the feed a consumer has not handled yet: the feed's last "
                                 "position minus the consumer's stored position, at scrape time.",
                                 labels=["consumer"])

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        manager = self._owner.manager
        if manager is None:
            return [family]
        store = manager.store
        try:
            if isinstance(store, ListsConsumers):  # one read: a watched consumer not in it has stored nothing
                positions = store.consumer_positions()
                positions.update((name, 0) for name in self._owner.consumers if name not in positions)
            else:
                positions = {name: manager.consumer_position(name) for name in self._owner.consumers}
            if not positions:
                return [family]
            head = manager.last_position()
            lags = [(name, max(head - positions[name], 0)) for name in sorted(positions)]
        except StoreError:
            self._owner.store_errors.labels("scrape").inc()
            self._owner.errors.labels("scrape", "StoreError").inc()
            logger.warning("cannot read the feed's positions for the metrics", exc_info=True)
            return [family]
        for name, lag in lags:
            family.add_metric([name], lag)
        return [family]


def _counts(manager: ManagerCore) -> dict[SessionStatus, int]:
    store = manager.store
    if isinstance(store, CountsByStatus):
        result = store.count_by_status()
        return {SessionStatus(k): int(v) for k, v in dict(result).items() if k in tuple(SessionStatus)}
    return {status: store.count(status) for status in SessionStatus}


class SessionflowMetrics:
    """sessionflow's Prometheus metrics, registered in ``registry``.

    Args:
        registry: where to register the metrics; by default ``prometheus_client.REGISTRY`` (the process-wide
            registry that ``prometheus_client`` exposes). Pass your program's own ``CollectorRegistry`` to keep
            them there; each registry can hold one ``SessionflowMetrics`` per ``namespace``.
        namespace: the metric name prefix.
        consumers: names of feed consumers whose lag to report (``sessionflow_consumer_lag_events``); more with
            :meth:`watch_consumer`. A consumer that consumes through the instrumented manager is added by itself.

    Attach to a manager with :meth:`instrument` (one manager per object: the ``sessions`` gauge reads that
    manager's store). :meth:`observe_event` may also be subscribed by hand.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, namespace: str = "sessionflow",
                 consumers: Iterable[str] = ()) -> None:
        self.registry: CollectorRegistry = REGISTRY if registry is None else registry
        self._unregistered = False
        self.namespace = namespace
        reg = self.registry
        self.transitions = Counter(
            "transitions", "Committed events, by event name and source and target state.",
            ["event", "source", "target"], namespace=namespace, registry=reg)
        self.expiry_lateness = Histogram(
            "expiry_lateness_seconds", "Timestamp of each expired event minus the session's deadline.",
            namespace=namespace, registry=reg, buckets=LATENESS_BUCKETS)
        self.sweep_duration = Histogram(
            "sweep_duration_seconds", "Duration of each expire_sessions sweep.",
            namespace=namespace, registry=reg, buckets=_SWEEP_DURATION_BUCKETS)
        self.sweep_size = Histogram(
            "sweep_sessions", "Sessions expired by each expire_sessions sweep.",
            namespace=namespace, registry=reg, buckets=SWEEP_SIZE_BUCKETS)
        self.conflicts = Counter(
            "concurrency_conflicts", "ConcurrencyConflict errors raised by the manager, by operation.",
            ["operation"], namespace=namespace, registry=reg)
        self.store_errors = Counter(
            "store_errors", "StoreError errors raised by the manager (or a scrape), by operation.",
            ["operation"], namespace=namespace, registry=reg)
        self.errors = Counter(
            "errors", "Every sessionflow error raised by the manager, by operation and error class.",
            ["operation", "error"], namespace=namespace, registry=reg)
        self.store_latency = Histogram(
            "store_command_seconds", "Duration of each store operation's round trips (stores that report them: "
            "Redis), by operation.", ["operation"], namespace=namespace, registry=reg,
            buckets=_STORE_LATENCY_BUCKETS)
        self.manager: ManagerCore | None = None
        self._store: EventStore | None = None
        self._originals: dict[str, Any] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._collector = _StatusCollector(self, f"{namespace}_sessions")
        reg.register(self._collector)
        self.consumers: set[str] = set()
        for name in consumers:
            self.watch_consumer(name)
        self._lag = _LagCollector(self, f"{namespace}_consumer_lag_events")
        reg.register(self._lag)

    # ------------------------------------------------------------------ attaching

    def instrument(self, manager: ManagerCore) -> SessionflowMetrics:
        """Count ``manager``'s events and errors and time its sweeps; returns ``self``.

        Subscribes :meth:`observe_event` and wraps the methods in :data:`INSTRUMENTED_METHODS` on this
        instance (so callers, the HTTP app and the timeout waker all go through them). Undo with
        :meth:`detach`.
        """
        if self.manager is not None:
            if self.manager is manager:
                return self
            raise ValueError("this SessionflowMetrics already instruments another manager")
        self.manager = manager
        self._store = manager.store
        self._unsubscribe = manager.subscribe(self.observe_event)
        if isinstance(manager.store, ReportsLatency):  # the Redis store times its commands
            manager.store.observe_latency(self.observe_store_latency)
        for name in INSTRUMENTED_METHODS:
            original = getattr(manager, name)
            self._originals[name] = original
            timed = name in ("expire_sessions", "sweep")  # the waker's sweeps go through ``sweep``
            wrapper = self._timed_sweep(original) if timed else self._counted(name, original)
            setattr(manager, name, wrapper)
        for name in _CONSUMER_METHODS:  # a consumer of this manager's feed: its lag is reported
            original = getattr(manager, name)
            self._originals[name] = original
            setattr(manager, name, self._noting_consumer(original))
        return self

    def watch_consumer(self, name: str) -> None:
        """Report the lag of the feed consumer ``name`` from now on (a consumer's name as the feed takes it, else
        :class:`~sessionflow.errors.InvalidInput`)."""
        self.consumers.add(validate_identifier(name, "consumers"))

    def detach(self) -> None:
        """Undo :meth:`instrument` (the metrics keep their values and stay registered)."""
        manager = self.manager
        if manager is None:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if isinstance(manager.store, ReportsLatency):
            manager.store.observe_latency(None)
        for name in self._originals:
            if name in vars(manager):
                delattr(manager, name)
        self._originals.clear()
        self.manager = None
        self._store = None

    def unregister(self) -> None:
        """Remove every metric from the registry (after :meth:`detach`, to build a new object); once (a second
        call does nothing)."""
        if self._unregistered:
            return
        self._unregistered = True
        for collector in (self.transitions, self.expiry_lateness, self.sweep_duration, self.sweep_size,
                          self.conflicts, self.store_errors, self.errors, self.store_latency, self._collector,
                          self._lag):
            self.registry.unregister(collector)

    # ------------------------------------------------------------------ observing

    def observe_event(self, event: SessionEvent) -> None:
        """Count one committed event (a :meth:`SessionManager.subscribe` callback)."""
        source = "none" if event.source_state is None else str(event.source_state)
        self.transitions.labels(str(event.event), source, str(event.target_state)).inc()
        if event.event is EventType.EXPIRED and self._store is not None:
            # Expiry leaves the deadline as it was, so the stored (cached) session still carries it.
            session = self._store.get(event.session_id, fresh=False)
            if session is not None and session.expires_at is not None:
                lateness = (event.timestamp - session.expires_at).total_seconds()
                self.expiry_lateness.observe(max(lateness, 0.0))

    def observe_store_latency(self, operation: str, seconds: float) -> None:
        """Record one store operation's duration (called by a store that reports them, e.g. Redis)."""
        self.store_latency.labels(operation).observe(seconds)

    def observe_error(self, operation: str, error: BaseException) -> None:
        """Count an error raised by ``operation``."""
        if not isinstance(error, SessionflowError):
            return
        self.errors.labels(operation, type(error).__name__).inc()
        if isinstance(error, ConcurrencyConflict):
            self.conflicts.labels(operation).inc()
        elif isinstance(error, StoreError):
            self.store_errors.labels(operation).inc()

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except SessionflowError as error:
                self.observe_error(name, error)
                raise

        return counted

    def _noting_consumer(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def noting(name: Any, *args: Any, **kwargs: Any) -> Any:
            # Noted before the call (a consumer that follows the feed returns only when it stops); a name the
            # feed refuses is left for the manager to report.
            with contextlib.suppress(InvalidInput):
                self.consumers.add(validate_identifier(name, "name"))
            return method(name, *args, **kwargs)

        return noting

    def _timed_sweep(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(method)
        def sweep(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = method(*args, **kwargs)
            except SessionflowError as error:
                self.observe_error("expire_sessions", error)
                raise
            self.sweep_duration.observe(time.perf_counter() - started)
            # expire_sessions returns a count; sweep, a SweepResult whose first field is that count.
            self.sweep_size.observe(result if isinstance(result, int) else result[0])
            return result

        return sweep

    def samples(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample of these metrics as ``(name, labels, value)`` (handy in tests)."""
        for collector in (self.transitions, self.expiry_lateness, self.sweep_duration, self.sweep_size,
                          self.conflicts, self.store_errors, self.errors, self.store_latency, self._collector,
                          self._lag):
            for metric in collector.collect():
                for sample in metric.samples:
                    yield sample.name, dict(sample.labels), sample.value
