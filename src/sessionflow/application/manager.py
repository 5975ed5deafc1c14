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
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from uuid import UUID, uuid4

from sessionflow.application.maintenance import Difference, rebuild_projection, verify_projection
from sessionflow.application.ports import Change, Clock, EventStore, Query, SystemClock, Waker
from sessionflow.domain.deadlines import DeadlinePolicy, initial_deadline, refreshed_deadline
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.lifecycle import EVENT_NAMES, SessionLifecycle
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
)

if TYPE_CHECKING:
    from sessionflow.application.ports import ExpiryDecider
    from sessionflow.settings import Settings

__all__ = ["SYSTEM", "UNSET", "SessionManager", "Subscriber"]

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

_STATUS_EVENTS: Final = {
    SessionStatus.IN_PROGRESS: "start",
    SessionStatus.COMPLETED: "complete",
    SessionStatus.FAILED: "fail",
    SessionStatus.EXPIRED: "expire",
}
_STRIPES: Final = 64
_LOAD_ATTEMPTS: Final = 5

_default_lifecycle: CompiledLifecycle | None = None


def default_lifecycle() -> CompiledLifecycle:
    """The compiled :class:`~sessionflow.domain.lifecycle.SessionLifecycle`, built once per process."""
    global _default_lifecycle
    if _default_lifecycle is None:
        _default_lifecycle = CompiledLifecycle(SessionLifecycle)
    return _default_lifecycle


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
    ) -> None:
        self._store = store
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.default_ttl = validate_ttl(default_ttl, "default_ttl")
        if max_lifetime is not None:
            validate_ttl(max_lifetime, "max_lifetime")
        self.deadlines = DeadlinePolicy(sliding=bool(sliding), max_lifetime=max_lifetime)
        self.single_active_per_user = bool(single_active_per_user)
        self.enforce_owner = bool(enforce_owner)
        self._lifecycle = default_lifecycle()
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
        return self._lifecycle

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
                                                 callback, event.event.value, event.version, event.session_id)
            finally:
                self._deliver_lock.release()

    # ------------------------------------------------------------------ helpers

    def _now(self) -> datetime:
        return truncate_to_ms(to_utc(self._clock.now(), "clock time"))

    def _event(self, session: Session | None, session_id: UUID, version: int, kind: EventType,
               target: SessionStatus, performer: str, now: datetime,
               payload: Mapping[str, Any]) -> SessionEvent:
        return SessionEvent.trusted(
            record_id=uuid4(),
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
        with self._stripes[hash(session.id) % _STRIPES]:
            self._store.append(change)
            if self._subscribers:
                self._outbox.append(change.events)
        if self._outbox:
            self._deliver()
        if self._waker is not None and session.status in LIVE_STATUSES and session.deleted_at is None:
            self._waker.notify_deadline(session.expires_at)

    def _expiry_change(self, session: Session, now: datetime) -> Change | None:
        try:
            decision = self._lifecycle.decide(session.status.value, "expire",
                                              {"session": session, "now": now}, session_id=session.id)
        except InvalidTransition:
            return None
        event = self._event(session, session.id, session.version + 1, EventType.EXPIRED,
                            SessionStatus(decision.target), SYSTEM, now, {})
        return Change(apply(session, event), (event,), session.version, previous=session)

    def _load(self, session_id: UUID, now: datetime, *, lazy_expiry: bool = True, fresh: bool = True) -> Session:
        """The live projection of a session; an overdue one is expired first (recorded as ``system``).

        ``fresh=False`` accepts the store's cached copy unverified (writes check the version anyway).
        """
        for attempt in range(_LOAD_ATTEMPTS):
            session = self._store.get(session_id, fresh=fresh or attempt > 0)
            if session is None or session.deleted_at is not None:
                raise SessionNotFound(session_id)
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

    def _deadline_payload(self, session: Session, now: datetime, target: SessionStatus,
                          payload: dict[str, Any], *, force: bool = False) -> None:
        if target in LIVE_STATUSES and (force or self.deadlines.sliding):
            payload["expires_at"] = format_timestamp(
                refreshed_deadline(now, ttl_of(session), session.max_expires_at))

    def _transition(self, session: Session, machine_event: str, performer: str, now: datetime,
                    payload: dict[str, Any], args: Mapping[str, Any] | None = None) -> SessionEvent:
        """Decide ``machine_event`` for ``session`` and build its event (not yet applied or stored)."""
        kwargs: dict[str, Any] = {"session": session, "now": now}
        if args:
            kwargs.update(args)
        decision = self._lifecycle.decide(session.status.value, machine_event, kwargs, session_id=session.id)
        target = SessionStatus(decision.target)
        self._deadline_payload(session, now, target, payload, force=machine_event == "touch")
        return self._event(session, session.id, session.version + 1, EVENT_NAMES[machine_event], target,
                           performer, now, payload)

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
            exclusive = (session.user_id if self.single_active_per_user and machine_event == "start"
                         else None)
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
    ) -> Session:
        """Create a ``pending`` session. Its deadline is ``now + ttl`` (default: the manager's TTL).

        Raises :class:`~sessionflow.errors.InvalidInput` for malformed arguments.
        """
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
        expires_at, cap = initial_deadline(now, session_ttl, self.deadlines.max_lifetime)
        payload["ttl_seconds"] = session_ttl.total_seconds()
        payload["expires_at"] = format_timestamp(expires_at)
        payload["max_expires_at"] = format_timestamp(cap) if cap is not None else None
        sid = uuid4()
        event = self._event(None, sid, 1, EventType.CREATED, SessionStatus(self._lifecycle.initial_state),
                            performer, now, payload)
        session = apply(None, event)
        self._commit(Change(session, (event,), 0))
        return session

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
        target: SessionStatus | None = None
        if status is not None:
            try:
                target = SessionStatus(status)
            except ValueError:
                raise InvalidInput("status", f"unknown status {status!r}", session_id=sid) from None
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
                machine_event = _STATUS_EVENTS.get(target)
                if machine_event is None:
                    raise InvalidTransition(sid, state=session.status.value,
                                            event=f"update(status={target.value})",
                                            reason=f"no event leads to {target.value!r}")
                payload: dict[str, Any] = {}
                args: dict[str, Any] = {}
                if machine_event == "fail":
                    payload["reason"] = (reason_text or "").strip()
                    args["reason"] = reason_text or ""
                actor = SYSTEM if machine_event == "expire" else performer
                event = self._transition(current, machine_event, actor, now, payload, args)
                events.append(event)
                current = apply(current, event)
            exclusive = (session.user_id if self.single_active_per_user and target is SessionStatus.IN_PROGRESS
                         else None)
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
        statuses = _statuses(status)
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
        statuses = _statuses(status)
        if statuses is not None and len(statuses) != 1:
            raise InvalidInput("status", "count takes one status")
        return self._store.count(next(iter(statuses)) if statuses else None)

    # ------------------------------------------------------------------ timeouts

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction.

        Each gets exactly one ``expired`` event by ``"system"``, even with other sweepers running.
        ``now`` defaults to the clock. Returns how many this call expired.
        """
        at = self._now() if now is None else truncate_to_ms(to_utc(now, "now"))
        _check_int(batch_size, "batch_size", 1, 100_000)
        decide: ExpiryDecider = self._expiry_change
        total = 0
        while True:
            changes = self._store.expire_due(at, batch_size, decide)
            total += len(changes)
            if changes and self._subscribers:
                for change in changes:
                    self._outbox.append(change.events)
                self._deliver()
            if len(changes) < batch_size:
                return total

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


def _statuses(value: Any) -> frozenset[SessionStatus] | None:
    if value is None:
        return None
    if isinstance(value, str | SessionStatus):
        items: Sequence[Any] = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        items = list(value)
    else:
        raise InvalidInput("status", f"expected a status or a list of statuses, got {type(value).__name__}")
    result: set[SessionStatus] = set()
    for item in items:
        try:
            result.add(SessionStatus(item))
        except ValueError:
            raise InvalidInput("status", f"unknown status {str(item)[:40]!r}") from None
    return frozenset(result)
