"""``SessionManager``: the facade that embedding programs use.

Every write follows one path: load the session, check the policies, let the lifecycle decide, build the
event, fold it into the new state with :func:`~sessionflow.domain.replay.apply`, append event and state to
the store atomically with the version it read (optimistic concurrency), then — only after the commit —
notify subscribers and the waker. A refused write appends nothing.

The manager holds no session state of its own, so it is safe to share between threads; any number of
managers, in any number of processes, may share one durable store.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self
from uuid import UUID

from sessionflow.application.maintenance import Difference, rebuild_projection, verify_projection
from sessionflow.application.ports import Change, Clock, EventStore, ExpiredBatch, Query, SystemClock, Waker
from sessionflow.domain.deadlines import DeadlinePolicy, initial_deadline, refreshed_deadline
from sessionflow.domain.decision import CompiledLifecycle, Decision
from sessionflow.domain.definitions import (
    DATA_EVENTS,
    SESSION_DEFINITION,
    LifecycleDefinition,
    LifecycleRegistry,
    default_registry,
)
from sessionflow.domain.lifecycle import EVENT_NAMES
from sessionflow.domain.models import (
    LIVE_STATUSES,
    EventType,
    Session,
    SessionEvent,
    SessionStatus,
)
from sessionflow.domain.replay import apply, ttl_of
from sessionflow.domain.values import (
    MAX_ID_LENGTH,
    MAX_LIST_LIMIT,
    FrozenDict,
    FrozenList,
    format_timestamp,
    freeze_json,
    new_uuid4,
    parse_session_id,
    to_utc,
    truncate_to_ms,
    validate_identifier,
    validate_path,
    validate_paths,
    validate_text,
    validate_ttl,
)
from sessionflow.errors import (
    ConcurrencyConflict,
    InvalidInput,
    InvalidTransition,
    SessionNotFound,
    SessionUserMismatch,
    StoreError,
    UnknownState,
)

if TYPE_CHECKING:
    from sessionflow.application.ports import ExpiryDecider
    from sessionflow.settings import Settings

__all__ = ["SYSTEM", "UNSET", "SessionManager", "Subscriber", "SweepResult"]

#: ``timedelta(microseconds=n)`` for n < 1000 (subtracting one is cheaper than ``datetime.replace``).
_MICROSECONDS: Final = tuple(timedelta(microseconds=n) for n in range(1000))

logger = logging.getLogger("sessionflow")

#: The performer id the engine uses for its own actions (expiry).
SYSTEM: Final = "system"


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: Marks an ``update`` argument that was not given (``None`` means "clear it").
UNSET: Final = _Unset()

#: A callback that receives each committed event.
Subscriber = Callable[[SessionEvent], object]


class SweepResult(NamedTuple):
    """What :meth:`SessionManager.sweep` did: how many sessions it expired, and the earliest deadline of a live
    session afterwards (``None``: none has one)."""

    expired: int
    next_deadline: datetime | None

_STATUS_EVENTS: Final = {
    SessionStatus.IN_PROGRESS: "start",
    SessionStatus.COMPLETED: "complete",
    SessionStatus.FAILED: "fail",
    SessionStatus.EXPIRED: "expire",
}
_STRIPES: Final = 64
#: Keyword names the engine gives guards itself; an event argument may not replace them.
_RESERVED_ARGS: Final = frozenset({"session", "model", "now", "event", "source", "target", "state", "machine",
                                   "event_data", "performer_id", "expected_version", "session_id"})
_LOAD_ATTEMPTS: Final = 5

def default_lifecycle() -> CompiledLifecycle:
    """The compiled :class:`~sessionflow.domain.lifecycle.SessionLifecycle`, built once per process."""
    return SESSION_DEFINITION.compiled


def _as_state(value: str) -> str:
    """A state value as the models keep it: the :class:`SessionStatus` member when there is one."""
    member: str = SessionStatus._value2member_map_.get(value, value)  # type: ignore[assignment]
    return member


def _json_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Event arguments as recorded in the payload (``args``), validated as a JSON object."""
    return {"args": freeze_json(args, "args")} if args else {}


def _performer(value: Any) -> str:
    return validate_identifier(value, "performer_id")


def _optional_id(value: Any, field: str) -> str | None:
    return None if value is None else validate_identifier(value, field)


class SessionManager:
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
    ) -> None:
        self._registry = registry if registry is not None else default_registry()
        if lifecycle is None:
            lifecycle = SESSION_DEFINITION
        if isinstance(lifecycle, str):
            lifecycle = self._registry.get(lifecycle)
        if not isinstance(lifecycle, LifecycleDefinition):
            raise InvalidInput("lifecycle", "expected a LifecycleDefinition or the name of a registered one")
        self._default_definition = self._registry.register(lifecycle)
        self._store = store
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._system_clock = type(self._clock) is SystemClock
        self.default_ttl = validate_ttl(default_ttl, "default_ttl")
        if max_lifetime is not None:
            validate_ttl(max_lifetime, "max_lifetime")
        self.deadlines = DeadlinePolicy(sliding=bool(sliding), max_lifetime=max_lifetime)
        self.single_active_per_user = bool(single_active_per_user)
        self.enforce_owner = bool(enforce_owner)
        self._lifecycle = self._default_definition.compiled
        self._waker = waker
        self._owns_store = owns_store
        self._subscribers: tuple[Subscriber, ...] = ()
        self._subscribe_lock = threading.Lock()
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))
        self._outbox: deque[tuple[SessionEvent, ...]] = deque()
        self._deliver_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def in_memory(cls, **options: Any) -> Self:
        """A manager over a fresh :class:`~sessionflow.adapters.memory.InMemoryEventStore`."""
        from sessionflow.adapters.memory import InMemoryEventStore

        return cls(InMemoryEventStore(), **options)

    @classmethod
    def open(cls, url: str | None = None, **options: Any) -> Self:
        """A manager over a durable SQL store (default: ``sqlite:///./sessionflow.db``).

        The schema is brought up to date unless ``migrate=False``. Other options are those of the
        constructor plus the store's (``pool_size``, ``echo``, ...); see :func:`sessionflow.bootstrap.build`.
        """
        from sessionflow.bootstrap import build

        manager = build(url, manager_class=cls, **options)
        assert isinstance(manager, cls)
        return manager

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Self:
        """A manager configured by ``settings`` (database, timeouts, policies); see
        :func:`sessionflow.bootstrap.from_settings`. ``options`` override or add constructor arguments."""
        from sessionflow.bootstrap import from_settings

        manager = from_settings(settings, manager_class=cls, **options)
        assert isinstance(manager, cls)
        return manager

    @property
    def store(self) -> EventStore:
        return self._store

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def lifecycle(self) -> CompiledLifecycle:
        """The compiled decision table of the definition new sessions run under."""
        return self._lifecycle

    @property
    def definition(self) -> LifecycleDefinition:
        """The lifecycle definition new sessions run under."""
        return self._default_definition

    @property
    def registry(self) -> LifecycleRegistry:
        return self._registry

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
        if self._waker is not None:
            self._waker.stop()
        if self._owns_store:
            self._store.close()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event committed through this manager, after its commit.

        Subscribers are called in the order they subscribed; the events of one session arrive in version
        order. A subscriber that raises is logged and skipped: it never undoes or blocks the commit nor
        stops the other subscribers. Returns a function that unsubscribes.
        """
        if not callable(callback):
            raise InvalidInput("callback", "must be callable")
        with self._subscribe_lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._subscribe_lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def _deliver(self) -> None:
        while self._outbox:
            if not self._deliver_lock.acquire(blocking=False):
                return  # another thread is delivering; it will pick our events up
            try:
                while True:
                    try:
                        events = self._outbox.popleft()
                    except IndexError:
                        break
                    subscribers = self._subscribers
                    for event in events:
                        for callback in subscribers:
                            try:
                                callback(event)
                            except Exception:
                                logger.exception("subscriber %r failed on event %s v%d of session %s",
                                                 callback, str(event.event), event.version, event.session_id)
            finally:
                self._deliver_lock.release()

    # ------------------------------------------------------------------ helpers

    def _now(self) -> datetime:
        if self._system_clock:  # always aware UTC: only the sub-millisecond part to drop
            now = datetime.now(UTC)
            micros = now.microsecond % 1000
            return now - _MICROSECONDS[micros] if micros else now
        return truncate_to_ms(to_utc(self._clock.now(), "clock time"))

    def _event(self, session: Session | None, session_id: UUID, version: int, kind: str,
               target: str, performer: str, now: datetime,
               payload: Mapping[str, Any]) -> SessionEvent:
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
        )

    def _commit(self, change: Change) -> None:
        session = change.session
        if not self._subscribers:
            # Nobody to deliver to: nothing to order, so no lock held across the database round trip. A
            # subscriber that arrives meanwhile sees the session's later events only (never out of order).
            self._store.append(change)
        else:
            # Commit and queue under the session's stripe, so its events are queued in version order.
            with self._stripes[hash(session.id) % _STRIPES]:
                self._store.append(change)
                self._outbox.append(change.events)
        if self._outbox:
            self._deliver()
        due = session.due_at
        if self._waker is not None and due is not None:
            self._waker.notify_deadline(due)

    # ------------------------------------------------------------------ lifecycles

    def _definition(self, session: Session) -> LifecycleDefinition:
        """The definition ``session`` runs under; its stored state must be one of the definition's."""
        default = self._default_definition
        if session.lifecycle == default.name and session.lifecycle_version == default.version:
            definition = default
        else:
            definition = self._registry.get(session.lifecycle, session.lifecycle_version)
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

    def _build(self, definition: LifecycleDefinition, session: Session, machine_event: str, performer: str,
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
            self._deadline_payload(definition, session, now, target, payload, touch=machine_event == "touch")
        if machine_event in DATA_EVENTS:
            recorded: str = EVENT_NAMES[machine_event]
        else:
            recorded = definition.recorded_name(machine_event)
            recorded = EventType._value2member_map_.get(recorded, recorded)  # type: ignore[assignment]
        return self._event(session, session.id, session.version + 1, recorded, _as_state(target), performer, now,
                           payload)

    def _deadline_payload(self, definition: LifecycleDefinition, session: Session, now: datetime, target: str,
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

    def _expiry_change(self, session: Session, now: datetime) -> Change | None:
        """The change firing the timeout of ``session``'s state as ``"system"``, or None if it is refused."""
        event = self._timeout_event(session, now)
        return None if event is None else Change(apply(session, event), (event,), session.version, previous=session)

    def _sweep_change(self, session: Session, now: datetime) -> Change | None:
        """:meth:`_expiry_change` for a sweep: the change does not keep the state it was decided on (a batch
        of a thousand holds fewer objects until it commits; the store writes a sweep's columns anyway)."""
        event = self._timeout_event(session, now)
        return None if event is None else Change(apply(session, event), (event,), session.version)

    def _timeout_event(self, session: Session, now: datetime) -> SessionEvent | None:
        """The event firing the timeout of ``session``'s state as ``"system"``, or None if it is refused."""
        definition = self._definition(session)
        timeout = definition.timeouts.get(str(session.status))
        if timeout is None:
            return None
        try:
            return self._build(definition, session, timeout.event, SYSTEM, now, dict(_json_args(timeout.args)),
                               timeout.args)
        except InvalidTransition:
            return None

    def _load(self, session_id: UUID, now: datetime, *, lazy_expiry: bool = True, fresh: bool = True) -> Session:
        """The live projection of a session; an overdue one is expired first (recorded as ``system``).

        ``fresh=False`` accepts the store's cached copy unverified (writes check the version anyway).
        """
        for attempt in range(_LOAD_ATTEMPTS):
            session = self._store.get(session_id, fresh=fresh or attempt > 0)
            if session is None or session.deleted_at is not None:
                raise SessionNotFound(session_id)
            self._definition(session)  # a state unknown to its lifecycle is an error, not a KeyError later
            if not (lazy_expiry and session.is_overdue(now)):
                return session
            change = self._expiry_change(session, now)
            if change is None:
                return session
            try:
                self._commit(change)
            except ConcurrencyConflict:
                continue  # someone else changed it first (maybe expired it): read again
            return change.session
        session = self._store.get(session_id)
        if session is None or session.deleted_at is not None:
            raise SessionNotFound(session_id)
        return session

    def _check_owner(self, session: Session, performer: str) -> None:
        if (self.enforce_owner and session.user_id is not None
                and performer not in (session.user_id, SYSTEM)):
            raise SessionUserMismatch(session.id, owner=session.user_id, performer_id=performer)

    def _transition(self, session: Session, machine_event: str, performer: str, now: datetime,
                    payload: dict[str, Any], args: Mapping[str, Any] | None = None) -> SessionEvent:
        """Decide ``machine_event`` for ``session`` under its own definition and build its event."""
        return self._build(self._definition(session), session, machine_event, performer, now, payload, args)

    def _change(self, sid: UUID, performer: str, expected_version: int | None,
                build: Callable[[Session, datetime], Change], *, lazy_expiry: bool = True) -> Session:
        """Load, check version and owner, ``build`` the change, commit it; return the new session.

        The first read may come from the store's read cache unverified: the append's version check
        catches a stale copy, and then (only then, and only without ``expected_version``) the change
        is decided once more on a fresh read. Any other conflict is raised to the caller.
        """
        cached_read = bool(getattr(self._store, "caches_reads", False))
        now = self._now()
        for attempt in range(2):
            fresh = attempt > 0 or not cached_read
            session = self._load(sid, now, lazy_expiry=lazy_expiry, fresh=fresh)
            if expected_version is not None and session.version != expected_version:
                if not fresh:
                    continue  # the cached copy may be behind: look again before refusing
                raise ConcurrencyConflict(sid, expected_version=expected_version, actual_version=session.version)
            self._check_owner(session, performer)
            change = build(session, now)
            try:
                self._commit(change)
            except ConcurrencyConflict:
                if fresh or expected_version is not None:
                    raise
                continue
            return change.session
        raise AssertionError("unreachable")  # pragma: no cover

    def _write(self, session_id: Any, machine_event: str, performer_id: Any, *,
               payload: dict[str, Any] | None = None, args: Mapping[str, Any] | None = None,
               expected_version: int | None = None,
               prepare: Callable[[Session], None] | None = None) -> Session:
        sid = parse_session_id(session_id)
        performer = _performer(performer_id)
        _check_expected(expected_version)

        def build(session: Session, now: datetime) -> Change:
            event = self._transition(session, machine_event, performer, now, dict(payload or {}), args)
            if prepare is not None:  # after the lifecycle: a terminal session is an invalid transition
                prepare(session)
            exclusive = (session.user_id if self.single_active_per_user and event.target_state == "in_progress"
                         and session.status != "in_progress" else None)
            return Change(apply(session, event), (event,), session.version, exclusive_user=exclusive,
                          decided_at=now, previous=session)

        return self._change(sid, performer, expected_version, build)

    # ------------------------------------------------------------------ writes

    def create(
        self,
        *,
        performer_id: str,
        user_id: str | None = None,
        workspace_id: str | None = None,
        module_name: str | None = None,
        file_paths: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: timedelta | None = None,
        lifecycle: LifecycleDefinition | str | None = None,
    ) -> Session:
        """Create a session in its lifecycle's initial state (``pending`` by default).

        ``ttl`` (default: the manager's) is the session's time-to-live: the default lifecycle expires it
        ``ttl`` after creation; a custom lifecycle uses it for the state timeouts declared without a
        duration. ``lifecycle`` picks another registered definition (by name: its newest version).
        Raises :class:`~sessionflow.errors.InvalidInput` for malformed arguments.
        """
        definition = self._resolve(lifecycle)
        performer = _performer(performer_id)
        payload: dict[str, Any] = {
            "user_id": _optional_id(user_id, "user_id"),
            "workspace_id": _optional_id(workspace_id, "workspace_id"),
            "module_name": _optional_id(module_name, "module_name"),
            "file_paths": FrozenList(validate_paths(file_paths)),
            "metadata": freeze_json(metadata, "metadata"),
        }
        session_ttl = self.default_ttl if ttl is None else validate_ttl(ttl)
        now = self._now()
        initial = definition.initial_state
        timeout = definition.timeouts.get(initial)
        first = timeout.after if timeout is not None and timeout.after is not None else session_ttl
        expires_at, cap = initial_deadline(now, first, self.deadlines.max_lifetime)
        payload["ttl_seconds"] = session_ttl.total_seconds()
        payload["expires_at"] = format_timestamp(expires_at) if timeout is not None else None
        payload["max_expires_at"] = format_timestamp(cap) if cap is not None else None
        if definition is not SESSION_DEFINITION:
            payload["lifecycle"] = definition.name
            payload["lifecycle_version"] = definition.version
        sid = new_uuid4()
        event = self._event(None, sid, 1, EventType.CREATED, _as_state(initial), performer, now, payload)
        session = apply(None, event)
        self._commit(Change(session, (event,), 0))
        return session

    def _event_leading_to(self, session: Session, current: Session, target: str) -> str:
        """The one event of the session's lifecycle that leads from its state to ``target``."""
        definition = self._definition(session)
        if target not in definition.compiled.state_set:
            raise InvalidInput("status", f"unknown status {target[:40]!r}", session_id=session.id)
        if definition is SESSION_DEFINITION:
            event = _STATUS_EVENTS.get(SessionStatus(target))
            if event is not None:
                return event
            candidates: list[str] = []
        else:
            state = str(current.status)
            candidates = [e for e in definition.compiled.allowed_events(state)
                          if any(t.target == target and not t.internal
                                 for t in definition.compiled.transitions(state, e))]
            if len(candidates) == 1:
                return candidates[0]
        if len(candidates) > 1:
            raise InvalidInput("status", f"several events lead to {target!r} ({', '.join(candidates)}): "
                                         "send the one you mean", session_id=session.id)
        raise InvalidTransition(session.id, state=str(current.status), event=f"update(status={target})",
                                reason=f"no event leads to {target!r}")

    def _resolve(self, lifecycle: LifecycleDefinition | str | None) -> LifecycleDefinition:
        if lifecycle is None:
            return self._default_definition
        if isinstance(lifecycle, LifecycleDefinition):
            return self._registry.register(lifecycle)
        if isinstance(lifecycle, str):
            return self._registry.get(lifecycle)
        raise InvalidInput("lifecycle", "expected a LifecycleDefinition or the name of a registered one")

    def send(self, session_id: UUID | str, event: str, *, performer_id: str, expected_version: int | None = None,
             **args: Any) -> Session:
        """Send any event of the session's lifecycle, with keyword arguments for its guards and validators.

        The arguments must form a JSON object: they are recorded in the event's payload (``args``). Names
        the engine passes itself (``session``, ``model``, ``now``, ``event``, ``source``, ...) are refused.
        ``send(id, "start", performer_id=...)`` is the same as :meth:`start`.
        """
        return self.send_with(session_id, event, args, performer_id=performer_id,
                              expected_version=expected_version)

    def send_with(self, session_id: UUID | str, event: str, args: Mapping[str, Any] | None = None, *,
                  performer_id: str, expected_version: int | None = None) -> Session:
        """:meth:`send` with the event's arguments as a mapping (for arguments from outside, e.g. HTTP)."""
        args = dict(args or {})
        for key in args:
            if not isinstance(key, str) or not key.isidentifier() or key in _RESERVED_ARGS:
                raise InvalidInput("args", f"{str(key)[:40]!r} cannot be an event argument")
        if not isinstance(event, str) or not event:
            raise InvalidInput("event", "expected the name of an event")
        if event in DATA_EVENTS or event == "update":
            raise InvalidInput("event", f"use the {event} method: it takes its own arguments")
        payload = _json_args(args)
        if event == "fail" and "reason" in args:
            reason = args["reason"]
            payload = {"reason": reason.strip() if isinstance(reason, str) else reason}
        return self._write(session_id, event, performer_id, payload=payload, args=args,
                           expected_version=expected_version)

    def migrate(self, session_id: UUID | str, *, performer_id: str, to_version: int | None = None,
                expected_version: int | None = None) -> Session:
        """Move a session to a newer version of its lifecycle (default: the newest), mapping its state
        through the mapping the new version declares for the old one (``migrations``). Recorded as a
        ``migrated`` event; a session without such a mapping keeps running under its own version.
        """
        sid = parse_session_id(session_id)
        performer = _performer(performer_id)
        _check_expected(expected_version)

        def build(session: Session, now: datetime) -> Change:
            current = self._definition(session)
            target = (self._registry.get(session.lifecycle) if to_version is None
                      else self._registry.get(session.lifecycle, to_version))
            if target.version <= current.version:
                raise InvalidInput("to_version", f"session {sid} already runs version {current.version}",
                                   session_id=sid)
            mapping = target.migrations.get(current.version)
            if mapping is None:
                raise InvalidTransition(sid, state=str(session.status), event="migrate",
                                        reason=f"version {target.version} declares no migration from "
                                               f"version {current.version}")
            state = mapping.get(str(session.status), str(session.status))
            if state not in target.compiled.state_set:
                raise InvalidTransition(sid, state=str(session.status), event="migrate",
                                        reason=f"state {state!r} does not exist in version {target.version}")
            payload: dict[str, Any] = {"from_version": current.version, "to_version": target.version}
            migrated = session.evolve(lifecycle_version=target.version, status=state)
            if not session.is_terminal:
                self._deadline_payload(target, migrated, now, state, payload, touch=False)
            event = self._event(session, sid, session.version + 1, EventType.MIGRATED, _as_state(state),
                                performer, now, payload)
            return Change(apply(session, event), (event,), session.version, previous=session)

        return self._change(sid, performer, expected_version, build, lazy_expiry=False)

    def start(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None) -> Session:
        """``pending`` → ``in_progress``. Refused once the deadline has passed."""
        return self._write(session_id, "start", performer_id, expected_version=expected_version)

    def record_file(self, session_id: UUID | str, path: str, error: str | None = None, *,
                    performer_id: str, expected_version: int | None = None) -> Session:
        """Record the outcome of one of the session's files: processed, or failed with ``error``.

        ``path`` must be one of the session's ``file_paths`` and not recorded yet.
        """
        file_path = validate_path(path, "path")
        err = None if error is None else validate_text(error, "error")

        def check(session: Session) -> None:
            if file_path not in session.file_paths:
                raise InvalidInput("path", f"{file_path!r} is not one of the session's files",
                                   session_id=session.id)
            if any(r.path == file_path for r in session.file_results):
                raise InvalidInput("path", f"{file_path!r} was already recorded", session_id=session.id)

        return self._write(session_id, "record_file", performer_id, payload={"path": file_path, "error": err},
                           expected_version=expected_version, prepare=check)

    def add_note(self, session_id: UUID | str, *, file_path: str, status: str, memory_id: str | None = None,
                 performer_id: str, expected_version: int | None = None) -> Session:
        """Attach a note (``file_path``, ``memory_id``, ``status``) to a live session."""
        payload = {
            "file_path": validate_path(file_path, "file_path"),
            "memory_id": _optional_id(memory_id, "memory_id"),
            "status": validate_identifier(status, "status"),
        }
        return self._write(session_id, "add_note", performer_id, payload=payload,
                           expected_version=expected_version)

    def complete(self, session_id: UUID | str, *, performer_id: str,
                 expected_version: int | None = None) -> Session:
        """``in_progress`` → ``completed``, once every file is processed or failed."""
        return self._write(session_id, "complete", performer_id, expected_version=expected_version)

    def fail(self, session_id: UUID | str, *, reason: str, performer_id: str,
             expected_version: int | None = None) -> Session:
        """``pending`` | ``in_progress`` → ``failed``, with a non-empty ``reason``."""
        if reason is not None and not isinstance(reason, str):
            raise InvalidInput("reason", f"expected a string, got {type(reason).__name__}")
        text = validate_text(reason, "reason", allow_empty=True) if reason is not None else ""
        return self._write(session_id, "fail", performer_id, payload={"reason": text.strip()},
                           args={"reason": text}, expected_version=expected_version)

    def expire(self, session_id: UUID | str) -> Session:
        """Expire an overdue live session now, as ``"system"``.

        Raises :class:`~sessionflow.errors.InvalidTransition` if it is not yet due or already terminal.
        """
        sid = parse_session_id(session_id)
        now = self._now()
        session = self._load(sid, now, lazy_expiry=False)
        change = self._expiry_change(session, now)
        if change is None:  # let the lifecycle say why
            self._transition(session, "expire", SYSTEM, now, {})
            raise AssertionError("unreachable: expiry refused but the lifecycle allowed it")  # pragma: no cover
        self._commit(change)
        return change.session

    def touch(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None) -> Session:
        """Extend the deadline to ``now`` + the session's TTL (never beyond its maximum lifetime)."""
        return self._write(session_id, "touch", performer_id, expected_version=expected_version)

    def update(
        self,
        session_id: UUID | str,
        *,
        performer_id: str,
        expected_version: int | None = None,
        current_file: str | Any | None = UNSET,
        metadata: Mapping[str, Any] | Any = UNSET,
        status: SessionStatus | str | None = None,
        reason: str | None = None,
    ) -> Session:
        """Change ``current_file`` and/or replace ``metadata``, and/or move to ``status``.

        A status change is dispatched through the lifecycle with its guards (``in_progress`` → start,
        ``completed`` → complete, ``failed`` → fail with ``reason``, ``expired`` → expire), never written
        directly. Field changes and the status change are appended together, atomically, as an
        ``updated`` event followed by the transition's event.
        """
        sid = parse_session_id(session_id)
        performer = _performer(performer_id)
        _check_expected(expected_version)
        fields: dict[str, Any] = {}
        if current_file is not UNSET:
            fields["current_file"] = None if current_file is None else validate_path(current_file,
                                                                                      "current_file")
        if metadata is not UNSET:
            fields["metadata"] = freeze_json(metadata, "metadata")
        target: str | None = None
        if status is not None:
            if not isinstance(status, str) or not status or len(status) > 128:
                raise InvalidInput("status", f"unknown status {str(status)[:40]!r}", session_id=sid)
            target = status
        if not fields and target is None:
            raise InvalidInput("update", "nothing to update: give current_file, metadata or status",
                               session_id=sid)
        reason_text = None
        if reason is not None:
            reason_text = validate_text(reason, "reason", allow_empty=True)

        def build(session: Session, now: datetime) -> Change:
            events: list[SessionEvent] = []
            current = session
            if fields:
                event = self._transition(current, "update", performer, now, dict(fields))
                events.append(event)
                current = apply(current, event)
            if target is not None:
                machine_event = self._event_leading_to(session, current, target)
                payload: dict[str, Any] = {}
                args: dict[str, Any] = {}
                if machine_event == "fail":
                    payload["reason"] = (reason_text or "").strip()
                    args["reason"] = reason_text or ""
                actor = SYSTEM if machine_event == "expire" else performer
                event = self._transition(current, machine_event, actor, now, payload, args)
                events.append(event)
                current = apply(current, event)
            exclusive = (session.user_id if self.single_active_per_user and current.status == "in_progress"
                         and session.status != "in_progress" else None)
            return Change(current, tuple(events), session.version, exclusive_user=exclusive, decided_at=now,
                          previous=session)

        return self._change(sid, performer, expected_version, build)

    def delete(self, session_id: UUID | str, *, performer_id: str,
               expected_version: int | None = None) -> Session:
        """Delete a session: it is gone from :meth:`get` and :meth:`list`; its history stays readable."""
        sid = parse_session_id(session_id)
        performer = _performer(performer_id)
        _check_expected(expected_version)

        def build(session: Session, now: datetime) -> Change:
            event = self._event(session, sid, session.version + 1, EventType.DELETED, session.status, performer,
                                now, {})
            return Change(apply(session, event), (event,), session.version, previous=session)

        return self._change(sid, performer, expected_version, build, lazy_expiry=False)

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID | str) -> Session:
        """The session. An overdue live session is expired first (recorded once, as ``"system"``).

        Raises :class:`~sessionflow.errors.SessionNotFound` if there is none (or it was deleted).
        """
        sid = parse_session_id(session_id)
        return self._load(sid, self._now())

    def get_active(self, session_id: UUID | str) -> Session | None:
        """The session while it is pending or in progress and not past its deadline, else ``None``."""
        sid = parse_session_id(session_id)
        try:
            session = self._load(sid, self._now())
        except SessionNotFound:
            return None
        return session if session.status in LIVE_STATUSES else None

    def list(
        self,
        *,
        status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
        user_id: str | None = None,
        workspace_id: str | None = None,
        module_name: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Session]:
        """Sessions matching every given filter, ordered by ``created_at``.

        ``limit`` is at most :data:`~sessionflow.domain.values.MAX_LIST_LIMIT` (1000). Overdue live
        sessions are expired first, so none is listed as pending or in progress past its deadline.
        """
        statuses = _statuses(status, self._registry)
        for name, value in (("user_id", user_id), ("workspace_id", workspace_id),
                            ("module_name", module_name)):
            if value is not None:
                validate_text(value, name, max_length=MAX_ID_LENGTH, allow_empty=True)
        _check_int(limit, "limit", 1, MAX_LIST_LIMIT)
        _check_int(offset, "offset", 0, 2**62)
        now = self._now()
        if self._store.has_due(now):
            self.expire_sessions(now=now)
        return self._store.query(Query(status=statuses, user_id=user_id, workspace_id=workspace_id,
                                       module_name=module_name, limit=limit, offset=offset, live_after=now))

    def history(self, session_id: UUID | str) -> builtins.list[SessionEvent]:
        """Every event of the session, oldest first — deleted sessions included."""
        sid = parse_session_id(session_id)
        events = self._store.history(sid)
        if not events:
            raise SessionNotFound(sid)
        return events

    def count(self, status: SessionStatus | str | None = None) -> int:
        """How many sessions there are (deleted ones excluded), optionally of one status."""
        statuses = _statuses(status, self._registry)
        if statuses is not None and len(statuses) != 1:
            raise InvalidInput("status", "count takes one status")
        return self._store.count(next(iter(statuses)) if statuses else None)

    # ------------------------------------------------------------------ timeouts

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction.

        Each gets exactly one ``expired`` event by ``"system"``, even with other sweepers running.
        ``now`` defaults to the clock. Returns how many this call expired.
        """
        return self._sweep(now, batch_size, next_deadline=False).expired

    def sweep(self, now: datetime | None = None, batch_size: int = 1000) -> SweepResult:
        """:meth:`expire_sessions`, and then the earliest deadline left: what a waker re-arms at.

        The deadline comes from the sweep's own statements when the store can tell it
        (``expire_due_next``, see :class:`~sessionflow.application.ports.ExpiredBatch`), else from
        :meth:`next_deadline`, read after the expired events were delivered to the subscribers. Either way it
        may be earlier than the truth (a session completed since), never later, except for deadlines another
        process wrote after the sweep read them.
        """
        return self._sweep(now, batch_size, next_deadline=True)

    def _sweep(self, now: datetime | None, batch_size: int, *, next_deadline: bool) -> SweepResult:
        at = self._now() if now is None else truncate_to_ms(to_utc(now, "now"))
        _check_int(batch_size, "batch_size", 1, 100_000)
        decide: ExpiryDecider = self._sweep_change
        store = self._store
        with_next = getattr(store, "expire_due_next", None) if next_deadline else None
        total = 0
        while True:
            if with_next is not None:
                batch: ExpiredBatch = with_next(at, batch_size, decide)
                changes = batch.changes
            else:
                changes = store.expire_due(at, batch_size, decide)
                batch = ExpiredBatch(changes)
            total += len(changes)
            if changes and self._subscribers:
                for change in changes:
                    self._outbox.append(change.events)
                self._deliver()
            if len(changes) < batch_size:
                break
        if not next_deadline:
            return SweepResult(total, None)
        # Delivered first: the deadline is read (if the batch could not tell it) only after the subscribers ran.
        return SweepResult(total, batch.next_deadline if batch.known else store.next_deadline())

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of any live session, or ``None``."""
        return self._store.next_deadline()

    # ------------------------------------------------------------------ the waker (timeouts that fire)

    @property
    def waker(self) -> Waker | None:
        """What wakes this manager at its deadlines (see :meth:`start_timeouts`), or ``None``."""
        return self._waker

    def start_timeouts(self, waker: Waker | None = None, *,
                       cleanup_interval: timedelta = timedelta(minutes=5)) -> Waker:
        """Expire sessions at their deadlines from now on, in the background; returns the waker.

        Without ``waker``, the one given to the constructor is used, else an
        :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker` sweeping every ``cleanup_interval`` as
        a safety net. A waker with a ``bind(manager)`` method is bound to this manager first. Starting
        sweeps at once, in the calling thread: sessions that fell due while nothing ran are expired when
        this returns. Stopped by :meth:`stop_timeouts`, :meth:`close` or leaving the ``with`` block.
        Idempotent. Raises :class:`~sessionflow.errors.StoreError` if the manager is closed or the store
        fails during the first sweep.
        """
        if self._closed:
            raise StoreError("the manager is closed")
        if waker is not None and waker is not self._waker:
            if self._waker is not None:
                self._waker.stop()
            self._waker = waker
        if self._waker is None:
            # The default adapter, imported only when asked for (the application layer does not need it).
            from sessionflow.adapters.apscheduler import ApschedulerWaker

            self._waker = ApschedulerWaker(cleanup_interval=cleanup_interval)
        bind = getattr(self._waker, "bind", None)
        if callable(bind):
            bind(self)
        self._waker.start()
        return self._waker

    def stop_timeouts(self) -> None:
        """Stop the waker (if any); sessions still expire lazily on reads and on :meth:`expire_sessions`."""
        if self._waker is not None:
            self._waker.stop()

    # ------------------------------------------------------------------ maintenance

    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Drop the projection and rebuild it from the events; returns how many sessions were rebuilt.

        ``progress(n)`` is called as sessions are folded. Run it while no other writer is active.
        """
        return rebuild_projection(self._store, progress)

    def verify(self, progress: Callable[[int], object] | None = None) -> builtins.list[Difference]:
        """Fold every history and list each difference from the stored projection (empty: all agree)."""
        return verify_projection(self._store, progress)

    def ping(self) -> bool:
        """True when the store answers (for readiness checks)."""
        return self._store.ping()


def _check_int(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")


def _check_expected(expected_version: Any) -> None:
    if expected_version is not None:
        _check_int(expected_version, "expected_version", 1, 2**62)


def _statuses(value: Any, registry: LifecycleRegistry) -> frozenset[str] | None:
    """Status filters: states of the registered lifecycles (an unknown one is a typo: ``InvalidInput``)."""
    if value is None:
        return None
    if isinstance(value, str | SessionStatus):
        items: Sequence[Any] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise InvalidInput("status", f"expected a status or a list of statuses, got {type(value).__name__}")
    known = registry.all_states()
    result: set[str] = set()
    for item in items:
        if not isinstance(item, str) or item not in known:
            raise InvalidInput("status", f"unknown status {str(item)[:40]!r}")
        result.add(_as_state(item))
    return frozenset(result)
