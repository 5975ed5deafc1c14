"""The write pipeline: load → decide → build the events → append → deliver.

Every write goes through :meth:`WritePipeline.change`: load the session (expiring it first if it is overdue),
check the expected version and the owner, let the caller's ``build`` decide and build the change — with
:meth:`WritePipeline.build_event`, which asks the session's lifecycle and sets the deadline the event leaves
— and commit it through :class:`~sessionflow.application.delivery.Delivery` with the version it read. A
refused write appends nothing. The arguments arrive validated (:mod:`sessionflow.application.validation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from sessionflow.application.delivery import Delivery
from sessionflow.application.idempotency import DEFAULT_WINDOW, IdempotencyRecord, KeyGuard, KeyRequest
from sessionflow.application.ports import CachesReads, Change, Clock, EventStore, KeepsIdempotencyKeys, SystemClock
from sessionflow.application.tracing import Tracing
from sessionflow.application.validation import as_state, json_args
from sessionflow.domain.deadlines import DeadlinePolicy, refreshed_deadline
from sessionflow.domain.decision import Decision
from sessionflow.domain.definitions import DATA_EVENTS, SESSION_DEFINITION, LifecycleDefinition, LifecycleRegistry
from sessionflow.domain.lifecycle import EVENT_NAMES
from sessionflow.domain.models import EventType, Session, SessionEvent
from sessionflow.domain.replay import apply, ttl_of
from sessionflow.domain.values import FrozenDict, format_timestamp, new_uuid4, to_utc, truncate_to_ms
from sessionflow.errors import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    SessionflowError,
    SessionNotFound,
    SessionUserMismatch,
    UnknownState,
)

__all__ = ["SYSTEM", "WritePipeline"]

#: The performer id the engine uses for its own actions (expiry).
SYSTEM: Final = "system"

#: ``timedelta(microseconds=n)`` for n < 1000 (subtracting one is cheaper than ``datetime.replace``).
_MICROSECONDS: Final = tuple(timedelta(microseconds=n) for n in range(1000))
_LOAD_ATTEMPTS: Final = 5

Build = Callable[[Session, datetime], Change]


class WritePipeline:
    """Decides and commits changes to sessions under the manager's policies.

    Holds no session state, so one pipeline is shared by every thread of its manager.
    """

    __slots__ = ("_system_clock", "caches_reads", "clock", "deadlines", "default_definition", "delivery",
                 "enforce_owner", "keys", "registry", "single_active_per_user", "store", "tracing")

    def __init__(self, store: EventStore, delivery: Delivery, *, clock: Clock, registry: LifecycleRegistry,
                 default_definition: LifecycleDefinition, deadlines: DeadlinePolicy,
                 single_active_per_user: bool, enforce_owner: bool,
                 idempotency_window: timedelta = DEFAULT_WINDOW) -> None:
        self.store = store
        self.delivery = delivery
        self.clock = clock
        self._system_clock = type(clock) is SystemClock
        #: The store may answer a read from its cache (``get(fresh=False)``): see :meth:`change`.
        self.caches_reads = isinstance(store, CachesReads) and bool(store.caches_reads)
        self.registry = registry
        self.default_definition = default_definition
        self.deadlines = deadlines
        self.single_active_per_user = single_active_per_user
        self.enforce_owner = enforce_owner
        #: Runs the writes given an idempotency key (``None``: the store keeps no keys).
        self.keys = KeyGuard(store, idempotency_window) if isinstance(store, KeepsIdempotencyKeys) else None
        #: Where the state a write was decided on is noted on the operation's span, and where the trace context
        #: its events record comes from (``None``: nowhere; they record none).
        self.tracing: Tracing | None = None

    def now(self) -> datetime:
        """The clock's time, aware UTC, truncated to the millisecond like every recorded timestamp."""
        if self._system_clock:  # always aware UTC: only the sub-millisecond part to drop
            now = datetime.now(UTC)
            micros = now.microsecond % 1000
            return now - _MICROSECONDS[micros] if micros else now
        return truncate_to_ms(to_utc(self.clock.now(), "clock time"))

    # ------------------------------------------------------------------ deciding

    def definition(self, session: Session) -> LifecycleDefinition:
        """The definition ``session`` runs under; its stored state must be one of the definition's."""
        default = self.default_definition
        if session.lifecycle == default.name and session.lifecycle_version == default.version:
            definition = default
        else:
            definition = self.registry.get(session.lifecycle, session.lifecycle_version)
        if str(session.status) not in definition.compiled.state_set:
            raise UnknownState(session.id, lifecycle=definition.name, version=definition.version,
                               state=str(session.status))
        return definition

    def _decide(self, definition: LifecycleDefinition, session: Session, machine_event: str,
                kwargs: Mapping[str, Any]) -> Decision:
        state = str(session.status)
        if machine_event in DATA_EVENTS and not definition.defines(machine_event):
            if state in definition.final_states:
                raise InvalidTransition(session.id, state=state, event=machine_event,
                                        reason=f"{state!r} is a final state")
            return Decision(machine_event, state, state, True)
        return definition.compiled.decide(state, machine_event, kwargs, session_id=session.id)

    def build_event(self, definition: LifecycleDefinition, session: Session, machine_event: str, performer: str,
                    now: datetime, payload: dict[str, Any], args: Mapping[str, Any] | None = None) -> SessionEvent:
        """Decide ``machine_event`` for ``session`` and build its event (not yet applied or stored)."""
        kwargs: dict[str, Any] = {"session": session, "model": session, "now": now, "event": machine_event,
                                  "source": str(session.status)}
        if args:
            kwargs.update(args)
        decision = self._decide(definition, session, machine_event, kwargs)
        target = decision.target
        final = target in definition.final_states
        if final and definition is not SESSION_DEFINITION:
            payload["final"] = True
        if not final:
            self.deadline_payload(definition, session, now, target, payload, touch=machine_event == "touch")
        if machine_event in DATA_EVENTS:
            recorded: str = EVENT_NAMES[machine_event]
        else:
            recorded = definition.recorded_name(machine_event)
            recorded = EventType._value2member_map_.get(recorded, recorded)  # type: ignore[assignment]
        return self.event(session, session.id, session.version + 1, recorded, as_state(target), performer, now,
                          payload)

    def transition(self, session: Session, machine_event: str, performer: str, now: datetime,
                   payload: dict[str, Any], args: Mapping[str, Any] | None = None) -> SessionEvent:
        """Decide ``machine_event`` for ``session`` under its own definition and build its event."""
        return self.build_event(self.definition(session), session, machine_event, performer, now, payload, args)

    def deadline_payload(self, definition: LifecycleDefinition, session: Session, now: datetime, target: str,
                         payload: dict[str, Any], *, touch: bool) -> None:
        """Set ``expires_at`` in ``payload`` when the event moves the deadline.

        Entering a state without a timeout clears it; entering one with a timeout starts it (unless the
        timeout keeps a running deadline); ``touch`` and, with sliding expiry, every write restart it.
        """
        timeout = definition.timeouts.get(target)
        if timeout is None:
            if session.expires_at is not None:
                payload["expires_at"] = None
            return
        entering = target != str(session.status)
        restart = touch or self.deadlines.sliding or session.expires_at is None or (entering and timeout.restart)
        if restart:
            duration = timeout.after if timeout.after is not None else ttl_of(session)
            payload["expires_at"] = format_timestamp(refreshed_deadline(now, duration, session.max_expires_at))

    def event(self, session: Session | None, session_id: UUID, version: int, kind: str, target: str,
              performer: str, now: datetime, payload: Mapping[str, Any]) -> SessionEvent:
        """A new event (its record id made here) leading ``session`` to ``target``, recording the trace context
        of the span current now (:meth:`~sessionflow.application.tracing.Tracing.carrier`; ``None`` without
        tracing)."""
        tracing = self.tracing
        return SessionEvent.trusted(
            record_id=new_uuid4(),
            session_id=session_id,
            version=version,
            event=kind,
            source_state=session.status if session is not None else None,
            target_state=target,
            performer_id=performer,
            timestamp=now,
            payload=FrozenDict(payload),
            position=None,
            trace_context=None if tracing is None else tracing.carrier(),
        )

    # ------------------------------------------------------------------ timeouts

    def timeout_event(self, session: Session, now: datetime) -> SessionEvent | None:
        """The event firing the timeout of ``session``'s state as ``"system"``, or None if it is refused."""
        definition = self.definition(session)
        timeout = definition.timeouts.get(str(session.status))
        if timeout is None:
            return None
        try:
            return self.build_event(definition, session, timeout.event, SYSTEM, now,
                                    dict(json_args(timeout.args)), timeout.args)
        except InvalidTransition:
            return None

    def expiry_change(self, session: Session, now: datetime) -> Change | None:
        """The change firing the timeout of ``session``'s state as ``"system"``, or None if it is refused."""
        event = self.timeout_event(session, now)
        return None if event is None else Change(apply(session, event), (event,), session.version, previous=session)

    def sweep_change(self, session: Session, now: datetime) -> Change | None:
        """:meth:`expiry_change` for a sweep: the change does not keep the state it was decided on (a batch
        of a thousand holds fewer objects until it commits; the store writes a sweep's columns anyway)."""
        event = self.timeout_event(session, now)
        return None if event is None else Change(apply(session, event), (event,), session.version)

    # ------------------------------------------------------------------ loading and committing

    def load(self, session_id: UUID, now: datetime, *, lazy_expiry: bool = True, fresh: bool = True) -> Session:
        """The live projection of a session; an overdue one is expired first (recorded as ``system``).

        ``fresh=False`` accepts the store's cached copy unverified (writes check the version anyway).
        """
        store = self.store
        for attempt in range(_LOAD_ATTEMPTS):
            session = store.get(session_id, fresh=fresh or attempt > 0)
            if session is None or session.deleted_at is not None:
                raise SessionNotFound(session_id)
            self.definition(session)  # a state unknown to its lifecycle is an error, not a KeyError later
            if not (lazy_expiry and session.is_overdue(now)):
                return session
            change = self.expiry_change(session, now)
            if change is None:
                return session
            try:
                self.delivery.commit(change)
            except ConcurrencyConflict:
                continue  # someone else changed it first (maybe expired it): read again
            return change.session
        session = store.get(session_id)
        if session is None or session.deleted_at is not None:
            raise SessionNotFound(session_id)
        return session

    def keyed(self, key: KeyRequest, write: Callable[[IdempotencyRecord, datetime], Session]) -> Session:
        """Run ``write`` under an idempotency key (:class:`~sessionflow.application.idempotency.KeyGuard`):
        answered from the stored key when there is one, else run with the record its change keeps."""
        guard = self.keys
        if guard is None:
            raise InvalidInput("idempotency_key", f"{type(self.store).__name__} does not keep idempotency keys")
        now = self.now()
        session = guard.run(key, now, lambda record: write(record, now))
        tracing = self.tracing
        if tracing is not None and tracing.active():
            tracing.annotate({"sessionflow.idempotency.replayed": key.handle.replayed})
        return session

    def commit_keyed(self, change: Change, record: IdempotencyRecord | None) -> None:
        """Commit ``change`` with the idempotency key ``record`` (when given) kept in its transaction."""
        if record is not None:  # (a constructor call: a third of dataclasses.replace's cost)
            change = Change(change.session, change.events, change.expected_version, change.exclusive_user,
                            change.decided_at, change.previous, record)
        self.delivery.commit(change)

    def change(self, sid: UUID, performer: str, expected_version: int | None, build: Build, *,
               lazy_expiry: bool = True, key: KeyRequest | None = None) -> Session:
        """Load, check version and owner, ``build`` the change, commit it; return the new session.

        The first read may come from the store's read cache unverified: the append's version check
        catches a stale copy, and then (only then, and only without ``expected_version``) the change
        is decided once more on a fresh read. A change refused on the cached copy (an invalid transition:
        another process may have moved the session on) is decided once more on a fresh read too, and the
        refusal raised only if that one refuses it as well. Any other conflict is raised to the caller.

        With ``key``, the write runs under that idempotency key (:meth:`keyed`).
        """
        if key is not None:
            return self.keyed(key, lambda record, now: self._change(sid, performer, expected_version, build,
                                                                     lazy_expiry, record, now))
        return self._change(sid, performer, expected_version, build, lazy_expiry, None, self.now())

    def _change(self, sid: UUID, performer: str, expected_version: int | None, build: Build, lazy_expiry: bool,
                record: IdempotencyRecord | None, now: datetime) -> Session:
        for attempt in range(2):
            fresh = attempt > 0 or not self.caches_reads
            session = self.load(sid, now, lazy_expiry=lazy_expiry, fresh=fresh)
            if expected_version is not None and session.version != expected_version:
                if not fresh:
                    continue  # the cached copy may be behind: look again before refusing
                raise ConcurrencyConflict(sid, expected_version=expected_version, actual_version=session.version)
            tracing = self.tracing
            if tracing is not None and tracing.active():
                tracing.annotate({"sessionflow.state.from": str(session.status)})
            try:
                self.check_owner(session, performer)
                change = build(session, now)
            except SessionflowError:
                if fresh:
                    raise
                continue  # refused on a cached copy, which may be behind another process's write: look again
            try:
                self.commit_keyed(change, record)
            except ConcurrencyConflict:
                if fresh or expected_version is not None:
                    raise
                continue
            return change.session
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, sid: UUID, machine_event: str, performer: str, *, payload: dict[str, Any] | None = None,
              args: Mapping[str, Any] | None = None, expected_version: int | None = None,
              prepare: Callable[[Session], None] | None = None, key: KeyRequest | None = None) -> Session:
        """Send ``machine_event`` to the session (arguments validated by the caller) and commit its event.

        ``prepare(session)`` runs after the lifecycle allowed the event, for checks that need the session
        (a terminal session is then an invalid transition, not one of ``prepare``'s errors).
        """

        def build(session: Session, now: datetime) -> Change:
            event = self.transition(session, machine_event, performer, now, dict(payload or {}), args)
            if prepare is not None:
                prepare(session)
            return self.transition_change(session, event, now)

        return self.change(sid, performer, expected_version, build, key=key)

    def check_owner(self, session: Session, performer: str) -> None:
        """Under ``enforce_owner``, only the session's user (or ``"system"``) may change a session that has one."""
        if self.enforce_owner and session.user_id is not None and performer not in (session.user_id, SYSTEM):
            raise SessionUserMismatch(session.id, owner=session.user_id, performer_id=performer)

    def transition_change(self, session: Session, event: SessionEvent, now: datetime) -> Change:
        """The change appending ``event`` (decided at ``now``) to ``session``; a start asks the store to check that
        the user has no other session in progress, under ``single_active_per_user``."""
        exclusive = (session.user_id if self.single_active_per_user and event.target_state == "in_progress"
                     and session.status != "in_progress" else None)
        return Change(apply(session, event), (event,), session.version, exclusive_user=exclusive, decided_at=now,
                      previous=session)
