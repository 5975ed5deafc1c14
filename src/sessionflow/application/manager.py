"""``ManagerCore``: the synchronous facade, without the constructors that open a store.

It builds the parts a write and a read go through — the write pipeline (:mod:`~sessionflow.application.pipeline`),
the delivery of committed events to subscribers and the waker (:mod:`~sessionflow.application.delivery`), the
reads, the timeouts and the feed — and holds what it runs on. Its public methods live in three parts, each a
module of its own: the writes (:mod:`~sessionflow.application.manager_writes`), the reads and the global feed
(:mod:`~sessionflow.application.manager_reads`), the timeouts and the maintenance
(:mod:`~sessionflow.application.manager_upkeep`). It holds no session state, so threads may share it, and any
number of managers in any number of processes may share one durable store. The constructors that open a store
(``open(url)``, ``in_memory()``, ``from_settings()``) are those of :class:`sessionflow.SessionManager`, its subclass
in :mod:`sessionflow.bootstrap`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, Self

from sessionflow.application import validation as valid
from sessionflow.application.delivery import Delivery, Subscriber
from sessionflow.application.feed import Feed
from sessionflow.application.idempotency import DEFAULT_WINDOW
from sessionflow.application.manager_reads import ManagerReads
from sessionflow.application.manager_upkeep import ManagerUpkeep
from sessionflow.application.manager_writes import ManagerWrites
from sessionflow.application.overview import Overview
from sessionflow.application.pipeline import SYSTEM, WritePipeline
from sessionflow.application.ports import Clock, EventStore, SystemClock, Waker
from sessionflow.application.reads import Reads
from sessionflow.application.timeouts import SweepResult, Timeouts
from sessionflow.application.tracing import Tracing, store_kind
from sessionflow.application.validation import UNSET
from sessionflow.domain.deadlines import DeadlinePolicy
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.definitions import SESSION_DEFINITION, LifecycleDefinition, LifecycleRegistry, default_registry
from sessionflow.domain.values import validate_ttl
from sessionflow.errors import InvalidInput

__all__ = ["SYSTEM", "UNSET", "ManagerCore", "Subscriber", "SweepResult", "default_lifecycle"]


def default_lifecycle() -> CompiledLifecycle:
    """The compiled :class:`~sessionflow.domain.lifecycle.SessionLifecycle`, built once per process."""
    return SESSION_DEFINITION.compiled


class ManagerCore(ManagerWrites, ManagerReads, ManagerUpkeep):
    """Drives sessions through their lifecycle over an :class:`~sessionflow.application.ports.EventStore`.

    Args:
        store: where events and sessions live. The manager closes it on :meth:`close` when
            ``owns_store`` is true (the default).
        clock: tells the time; defaults to the system clock (which freezegun and time-machine move).
        default_ttl: time-to-live of a session created without ``ttl``.
        sliding: when true, every write moves the deadline to ``now + ttl``.
        max_lifetime: an absolute cap: no session lives past ``created_at + max_lifetime``.
        single_active_per_user: refuse to start a session while its user has another in progress
            (:class:`~sessionflow.errors.ActiveSessionExists`).
        enforce_owner: a write to a session that has a ``user_id`` must come from that user or from
            ``"system"`` (:class:`~sessionflow.errors.SessionUserMismatch`).
        waker: wakes the engine at deadlines (see :meth:`start_timeouts`); optional.
        lifecycle: the definition new sessions run under (a :class:`LifecycleDefinition`, or the name
            of one in ``registry``, newest version); default: the ``session`` lifecycle.
        registry: where the definitions of existing sessions are looked up (default: the process-wide
            :func:`~sessionflow.domain.definitions.default_registry`); ``lifecycle`` is registered in it.
        group_commit: the single writes of concurrent threads share transactions (one commit for all the
            writes that arrive while the previous commit is under way; each call still returns only after its
            own commit, with its own outcome): see :mod:`~sessionflow.application.group_commit`. Worth it on a
            store whose commit waits for the disk; a lone thread sees no difference. ``True`` or the most
            changes in one transaction.
        idempotency_window: how long the store keeps a write's idempotency key (default 24 hours): a write sent
            again with its key within it is answered, not written again; after it, it writes again. See
            :mod:`~sessionflow.application.idempotency`.
        tracing: where the spans of its operations go (:mod:`~sessionflow.application.tracing`); ``None``: the
            facade's default (:class:`sessionflow.SessionManager`: OpenTelemetry's, once the process uses it);
            ``False``: none.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        clock: Clock | None = None,
        default_ttl: timedelta = timedelta(hours=1),
        sliding: bool = False,
        max_lifetime: timedelta | None = None,
        single_active_per_user: bool = False,
        enforce_owner: bool = False,
        waker: Waker | None = None,
        owns_store: bool = True,
        lifecycle: LifecycleDefinition | str | None = None,
        registry: LifecycleRegistry | None = None,
        group_commit: bool | int = False,
        idempotency_window: timedelta = DEFAULT_WINDOW,
        tracing: Tracing | Literal[False] | None = None,
    ) -> None:
        self._registry = registry if registry is not None else default_registry()
        if lifecycle is None:
            lifecycle = SESSION_DEFINITION
        if isinstance(lifecycle, str):
            lifecycle = self._registry.get(lifecycle)
        if not isinstance(lifecycle, LifecycleDefinition):
            raise InvalidInput("lifecycle", "expected a LifecycleDefinition or the name of a registered one")
        definition = self._registry.register(lifecycle)
        self.default_ttl = validate_ttl(default_ttl, "default_ttl")
        if max_lifetime is not None:
            validate_ttl(max_lifetime, "max_lifetime")
        self._store = store
        self._owns_store = owns_store
        self._closed = False
        self._delivery = Delivery(store, waker, group=valid.group_commit(store, group_commit))
        self._pipeline = WritePipeline(
            store, self._delivery, clock=clock if clock is not None else SystemClock(), registry=self._registry,
            default_definition=definition, deadlines=DeadlinePolicy(sliding=bool(sliding), max_lifetime=max_lifetime),
            single_active_per_user=bool(single_active_per_user), enforce_owner=bool(enforce_owner),
            idempotency_window=validate_ttl(idempotency_window, "idempotency_window"))
        chosen = self._default_tracing() if tracing is None else tracing
        #: Spans of the operations (``None``: none), and the store's kind they name.
        self._tracing: Tracing | None = chosen if chosen is not False else None
        self._store_kind = store_kind(store)
        if self._tracing is not None:
            self._delivery.trace(self._tracing, self._store_kind)
            self._pipeline.tracing = self._tracing
        self._timeouts = Timeouts(self._pipeline, self._new_waker)
        self._reads = Reads(self._pipeline, self._timeouts)
        self._overview = Overview(self._pipeline, self._timeouts)
        #: The decider that expires one overdue session (what a sweep asks the store to apply).
        self._expiry_change = self._pipeline.expiry_change
        self._feed = Feed(store, self._pipeline, self._new_watcher)
        self._feed.tracing = self._tracing

    def _default_tracing(self) -> Tracing | None:
        """The tracing of a manager built with ``tracing=None`` (here: none; :class:`sessionflow.SessionManager`
        traces through OpenTelemetry once the process uses it)."""
        return None

    def _new_waker(self, cleanup_interval: timedelta) -> Waker:
        """The waker :meth:`start_timeouts` builds when none was given (here: none; a subclass picks one)."""
        raise InvalidInput("waker", "no waker given: pass one to the constructor or to start_timeouts()")

    def _new_watcher(self) -> Any:
        """The watcher that tells of other processes' commits (``subscribe(callback) -> unsubscribe``), or
        ``None`` (here: none; :class:`sessionflow.SessionManager` builds one for its store)."""
        return None

    # ------------------------------------------------------------------ what it runs on

    @property
    def store(self) -> EventStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._pipeline.clock

    @property
    def lifecycle(self) -> CompiledLifecycle:
        """The compiled decision table of the definition new sessions run under."""
        return self._pipeline.default_definition.compiled

    @property
    def definition(self) -> LifecycleDefinition:
        """The lifecycle definition new sessions run under."""
        return self._pipeline.default_definition

    @property
    def registry(self) -> LifecycleRegistry:
        return self._registry

    @property
    def deadlines(self) -> DeadlinePolicy:
        """How deadlines move (sliding expiry, maximum lifetime)."""
        return self._pipeline.deadlines

    @property
    def single_active_per_user(self) -> bool:
        return self._pipeline.single_active_per_user

    @property
    def enforce_owner(self) -> bool:
        return self._pipeline.enforce_owner

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the waker if running and release the store (if the manager owns it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._timeouts.stop()
        if self._owns_store:
            self._store.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` began."""
        return self._closed

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event committed through this manager, after its commit.

        Subscribers are called in the order they subscribed; the events of one session arrive in version
        order. A subscriber that raises is logged and skipped: it never undoes or blocks the commit nor
        stops the other subscribers. Returns a function that unsubscribes.
        """
        return self._delivery.subscribe(callback)
