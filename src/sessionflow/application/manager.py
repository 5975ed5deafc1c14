"""``ManagerCore``: the synchronous facade's engine, without the constructors that open a store.

Each public method validates its arguments at the edge (:mod:`~sessionflow.application.validation`) and hands
them to the write pipeline (:mod:`~sessionflow.application.pipeline`, :mod:`~sessionflow.application.commands`),
the reads (:mod:`~sessionflow.application.reads`) or the timeouts (:mod:`~sessionflow.application.timeouts`);
events reach subscribers and the waker after their commit (:mod:`~sessionflow.application.delivery`). It holds
no session state, so threads may share it, and any number of managers in any number of processes may share one
durable store. The global event feed and its consumers are :mod:`~sessionflow.application.feed`'s. The
constructors that open a store (``open(url)``, ``in_memory()``, ``from_settings()``) are
those of :class:`sessionflow.SessionManager`, its subclass in :mod:`sessionflow.bootstrap`.

Longer than 400 lines: it is the whole public API of the library, some thirty methods of a few lines each,
each with the docstring that documents it; every one hands its work to another module at once.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast
from uuid import UUID

from sessionflow.application import batches, commands
from sessionflow.application import validation as valid
from sessionflow.application.batches import CreateItem, SendItem
from sessionflow.application.delivery import Delivery, Subscriber
from sessionflow.application.feed import Feed, Handler
from sessionflow.application.maintenance import Difference, rebuild_projection, verify_projection
from sessionflow.application.pipeline import SYSTEM, WritePipeline
from sessionflow.application.ports import Clock, EventStore, SystemClock, Waker
from sessionflow.application.reads import Reads, SessionPage
from sessionflow.application.retention import Archive, PurgeResult, purge_arguments, purge_closed
from sessionflow.application.timeouts import SweepResult, Timeouts
from sessionflow.application.validation import UNSET
from sessionflow.domain.deadlines import DeadlinePolicy
from sessionflow.domain.decision import CompiledLifecycle
from sessionflow.domain.definitions import SESSION_DEFINITION, LifecycleDefinition, LifecycleRegistry, default_registry
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.domain.values import parse_session_id, validate_ttl
from sessionflow.errors import InvalidInput, StoreError

__all__ = ["SYSTEM", "UNSET", "ManagerCore", "Subscriber", "SweepResult", "default_lifecycle"]


def default_lifecycle() -> CompiledLifecycle:
    """The compiled :class:`~sessionflow.domain.lifecycle.SessionLifecycle`, built once per process."""
    return SESSION_DEFINITION.compiled


class ManagerCore:
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
            single_active_per_user=bool(single_active_per_user), enforce_owner=bool(enforce_owner))
        self._timeouts = Timeouts(self._pipeline, self._new_waker)
        self._reads = Reads(self._pipeline, self._timeouts)
        #: The decider that expires one overdue session (what a sweep asks the store to apply).
        self._expiry_change = self._pipeline.expiry_change
        self._feed = Feed(store, self._pipeline, self._new_watcher)

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

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for each event committed through this manager, after its commit.

        Subscribers are called in the order they subscribed; the events of one session arrive in version
        order. A subscriber that raises is logged and skipped: it never undoes or blocks the commit nor
        stops the other subscribers. Returns a function that unsubscribes.
        """
        return self._delivery.subscribe(callback)

    # ------------------------------------------------------------------ writes

    def create(self, *, performer_id: str, user_id: str | None = None, workspace_id: str | None = None,
               module_name: str | None = None, file_paths: Iterable[str] | None = None,
               metadata: Mapping[str, Any] | None = None, ttl: timedelta | None = None,
               lifecycle: LifecycleDefinition | str | None = None, start: bool = False) -> Session:
        """Create a session in its lifecycle's initial state (``pending`` by default).

        ``ttl`` (default: the manager's) is the session's time-to-live: the default lifecycle expires it
        ``ttl`` after creation; a custom lifecycle uses it for the state timeouts declared without a
        duration. ``lifecycle`` picks another registered definition (by name: its newest version).
        ``start=True`` creates and starts the session at once: both events are decided (the start's guards,
        ``enforce_owner``) before anything is written and appended in one transaction, in which the store
        checks ``single_active_per_user``; a refusal (:class:`~sessionflow.errors.InvalidTransition`,
        :class:`~sessionflow.errors.ActiveSessionExists` with ``session_id=None`` and the user's
        ``active_session_id``) or a store failure leaves no session and no event.
        Raises :class:`~sessionflow.errors.InvalidInput` for malformed arguments.
        """
        definition = valid.resolve_lifecycle(self._registry, lifecycle, self._pipeline.default_definition)
        arguments = valid.create_arguments(performer_id=performer_id, user_id=user_id, workspace_id=workspace_id,
                                           module_name=module_name, file_paths=file_paths, metadata=metadata,
                                           ttl=ttl, default_ttl=self.default_ttl)
        if not isinstance(start, bool):
            raise InvalidInput("start", f"expected True or False, got {type(start).__name__}")
        return commands.create(self._pipeline, definition, arguments, start=start)

    def create_many(self, items: Iterable[CreateItem | Mapping[str, Any]], *,
                    performer_id: str) -> builtins.list[Session]:
        """Create a session per item, all in one transaction; returns them in item order.

        Each item is a mapping of :meth:`create`'s keyword arguments but ``performer_id`` (``user_id``,
        ``workspace_id``, ``module_name``, ``file_paths``, ``metadata``, ``ttl``, ``lifecycle``; ``{}`` is a
        session with the defaults), validated as :meth:`create` validates them. At most
        :data:`~sessionflow.application.batches.MAX_BATCH` (10,000) items. One bad item raises
        :class:`~sessionflow.errors.BatchRejected` naming it (``index``, and its own ``error``), and nothing is
        written. Subscribers hear every event after the commit; one commit for the whole batch.
        """
        return batches.create_many(self._pipeline, self._registry, items, performer_id, self.default_ttl)

    def send_many(self, items: Iterable[SendItem | tuple[Any, ...]], *, performer_id: str) -> builtins.list[Session]:
        """Send an event per item, all in one transaction; returns each item's session as its event left it.

        Items are :class:`~sessionflow.application.batches.SendItem` or tuples ``(session_id, event[, args[,
        expected_version]])``, each decided as :meth:`send_with` decides it, in order: a later item of the same
        session is decided on the state the earlier one leads to (its ``expected_version``, if given, is the
        version that earlier item leaves). An overdue session's expiry is recorded first, as on a single write.
        One refused item raises :class:`~sessionflow.errors.BatchRejected` naming it (``index``, and its own
        ``error``: ``InvalidInput``, ``SessionNotFound``, ``InvalidTransition``, ``ConcurrencyConflict``,
        ``ActiveSessionExists``, ...), and nothing is written.
        """
        return batches.send_many(self._pipeline, items, performer_id)

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
        arguments, payload = valid.event_arguments(event, args)
        return self._write(session_id, event, performer_id, expected_version, payload=payload, args=arguments)

    def _write(self, session_id: Any, machine_event: str, performer_id: Any, expected_version: Any, *,
               payload: dict[str, Any] | None = None, args: Mapping[str, Any] | None = None,
               prepare: Callable[[Session], None] | None = None) -> Session:
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        return self._pipeline.write(sid, machine_event, performer, payload=payload, args=args,
                                    expected_version=expected_version, prepare=prepare)

    def migrate(self, session_id: UUID | str, *, performer_id: str, to_version: int | None = None,
                expected_version: int | None = None) -> Session:
        """Move a session to a newer version of its lifecycle (default: the newest), mapping its state
        through the mapping the new version declares for the old one (``migrations``). Recorded as a
        ``migrated`` event; a session without such a mapping keeps running under its own version.
        """
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        return commands.migrate(self._pipeline, sid, performer, to_version, expected_version)

    def start(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None) -> Session:
        """``pending`` → ``in_progress``. Refused once the deadline has passed."""
        return self._write(session_id, "start", performer_id, expected_version)

    def record_file(self, session_id: UUID | str, path: str, error: str | None = None, *,
                    performer_id: str, expected_version: int | None = None) -> Session:
        """Record the outcome of one of the session's files: processed, or failed with ``error``.

        ``path`` must be one of the session's ``file_paths`` and not recorded yet.
        """
        file_path, err = valid.file_outcome(path, error)
        return self._write(session_id, "record_file", performer_id, expected_version,
                           payload={"path": file_path, "error": err}, prepare=commands.record_file_check(file_path))

    def add_note(self, session_id: UUID | str, *, file_path: str, status: str, memory_id: str | None = None,
                 performer_id: str, expected_version: int | None = None) -> Session:
        """Attach a note (``file_path``, ``memory_id``, ``status``) to a live session."""
        payload = valid.note_payload(file_path, memory_id, status)
        return self._write(session_id, "add_note", performer_id, expected_version, payload=payload)

    def complete(self, session_id: UUID | str, *, performer_id: str,
                 expected_version: int | None = None) -> Session:
        """``in_progress`` → ``completed``, once every file is processed or failed."""
        return self._write(session_id, "complete", performer_id, expected_version)

    def fail(self, session_id: UUID | str, *, reason: str, performer_id: str,
             expected_version: int | None = None) -> Session:
        """``pending`` | ``in_progress`` → ``failed``, with a non-empty ``reason``."""
        text = valid.fail_reason(reason)
        return self._write(session_id, "fail", performer_id, expected_version, payload={"reason": text.strip()},
                           args={"reason": text})

    def expire(self, session_id: UUID | str) -> Session:
        """Expire an overdue live session now, as ``"system"``.

        Raises :class:`~sessionflow.errors.InvalidTransition` if it is not yet due or already terminal.
        """
        return commands.expire(self._pipeline, parse_session_id(session_id))

    def touch(self, session_id: UUID | str, *, performer_id: str,
              expected_version: int | None = None) -> Session:
        """Extend the deadline to ``now`` + the session's TTL (never beyond its maximum lifetime)."""
        return self._write(session_id, "touch", performer_id, expected_version)

    def update(self, session_id: UUID | str, *, performer_id: str, expected_version: int | None = None,
               current_file: str | Any | None = UNSET, metadata: Mapping[str, Any] | Any = UNSET,
               status: SessionStatus | str | None = None, reason: str | None = None) -> Session:
        """Change ``current_file`` and/or replace ``metadata``, and/or move to ``status``.

        A status change is dispatched through the lifecycle with its guards (``in_progress`` → start,
        ``completed`` → complete, ``failed`` → fail with ``reason``, ``expired`` → expire), never written
        directly. Field changes and the status change are appended together, atomically, as an
        ``updated`` event followed by the transition's event.
        """
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        fields, target, reason_text = valid.update_fields(sid, current_file, metadata, status, reason)
        return commands.update(self._pipeline, sid, performer, expected_version, fields, target, reason_text)

    def delete(self, session_id: UUID | str, *, performer_id: str,
               expected_version: int | None = None) -> Session:
        """Delete a session: it is gone from :meth:`get` and :meth:`list`; its history stays readable."""
        sid = parse_session_id(session_id)
        performer = valid.performer(performer_id)
        valid.check_expected(expected_version)
        return commands.delete(self._pipeline, sid, performer, expected_version)

    # ------------------------------------------------------------------ reads

    def get(self, session_id: UUID | str) -> Session:
        """The session. An overdue live session is expired first (recorded once, as ``"system"``).

        Raises :class:`~sessionflow.errors.SessionNotFound` if there is none (or it was deleted).
        """
        return self._reads.get(parse_session_id(session_id))

    def get_active(self, session_id: UUID | str) -> Session | None:
        """The session while it is pending or in progress and not past its deadline, else ``None``."""
        return self._reads.get_active(parse_session_id(session_id))

    def list(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
             user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
             lifecycle: str | None = None, created_after: datetime | None = None,
             created_before: datetime | None = None, cursor: str | None = None, limit: int = 100,
             offset: int = 0) -> builtins.list[Session]:
        """Sessions matching every given filter, ordered by ``created_at`` then id.

        ``lifecycle``: the name sessions were created under. ``created_after <= created_at < created_before``
        (aware datetimes). ``cursor``: continue after the place a :meth:`page`'s ``next_cursor`` stands for
        (``offset`` then skips within what follows). ``limit`` is at most
        :data:`~sessionflow.domain.values.MAX_LIST_LIMIT` (1000). Overdue live sessions are expired first, so
        none is listed as pending or in progress past its deadline.
        """
        filters = valid.list_arguments(
            self._registry, status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
            lifecycle=lifecycle, created_after=created_after, created_before=created_before, limit=limit,
            offset=offset)
        return self._reads.list(filters, limit, offset, valid.decode_cursor(cursor))

    def page(self, *, status: SessionStatus | str | Iterable[SessionStatus | str] | None = None,
             user_id: str | None = None, workspace_id: str | None = None, module_name: str | None = None,
             lifecycle: str | None = None, created_after: datetime | None = None,
             created_before: datetime | None = None, cursor: str | None = None, limit: int = 100) -> SessionPage:
        """One page of :meth:`list` walked by cursor (keyset pagination): ``items``, and ``next_cursor`` to pass
        as ``cursor`` for the next page (``None`` after the last one). Page 1,000 costs what page 1 costs, and
        sessions created meanwhile never shift a page."""
        filters = valid.list_arguments(
            self._registry, status=status, user_id=user_id, workspace_id=workspace_id, module_name=module_name,
            lifecycle=lifecycle, created_after=created_after, created_before=created_before, limit=limit)
        return self._reads.page(filters, limit, valid.decode_cursor(cursor))

    def history(self, session_id: UUID | str) -> builtins.list[SessionEvent]:
        """Every event of the session, oldest first — deleted sessions included."""
        return self._reads.history(parse_session_id(session_id))

    def count(self, status: SessionStatus | str | None = None) -> int:
        """How many sessions there are (deleted ones excluded), optionally of one status."""
        statuses = valid.statuses(status, self._registry)
        if statuses is not None and len(statuses) != 1:
            raise InvalidInput("status", "count takes one status")
        return self._reads.count(next(iter(statuses)) if statuses else None)

    # ------------------------------------------------------------------ the global feed

    def events(self, *, after: int = 0, limit: int = 1000) -> builtins.list[SessionEvent]:
        """Up to ``limit`` (at most 10,000) events of every session with a ``position`` above ``after``, in
        position order: commit order, so an event never appears below a position already read."""
        return self._feed.events(after, limit)

    def last_position(self) -> int:
        """The position of the newest event in the feed (0: none yet)."""
        return self._feed.last_position()

    def consumer_position(self, name: str) -> int:
        """The position the consumer ``name`` has handled the feed up to (0: nothing yet)."""
        return self._feed.consumer_position(name)

    def save_consumer_position(self, name: str, position: int) -> None:
        """Store ``position`` for the consumer ``name`` (never moving it back)."""
        self._feed.save_consumer_position(name, position)

    def consume(self, name: str, handler: Handler, *, batch_size: int = 100, follow: bool = True,
                stop: threading.Event | None = None, poll_interval: float = 0.5, max_events: int | None = None) -> int:
        """Hand each event after the position stored for ``name`` to ``handler(event)``, in position order, and
        store the position of each batch once its handler calls returned; returns how many were handled.

        At-least-once: after a crash the consumer resumes at its stored position, so a handler must be
        idempotent (``event.record_id`` identifies an event). ``follow``: wait for new events (woken by other
        processes' commits where the store can tell, else every ``poll_interval`` seconds) until ``stop`` is
        set or ``max_events`` were handled; else return when the feed is exhausted. An exception of the
        handler stops the consumer (the events before it stay handled) and propagates.
        """
        return self._feed.consume(name, handler, batch_size=batch_size, follow=follow, stop=stop,
                                  poll_interval=poll_interval, max_events=max_events)

    # ------------------------------------------------------------------ timeouts

    def expire_sessions(self, now: datetime | None = None, batch_size: int = 1000, *,
                        limit: int | None = None) -> int:
        """Expire every overdue live session, in batches of ``batch_size`` per transaction.

        Each gets exactly one ``expired`` event by ``"system"``, even with other sweepers running.
        ``now`` defaults to the clock. ``limit``: stop after the batch that reaches this many (the rest is left
        for the next sweep). Returns how many this call expired.
        """
        return self._timeouts.sweep(now, batch_size, next_deadline=False, limit=limit).expired

    def sweep(self, now: datetime | None = None, batch_size: int = 1000, *, limit: int | None = None) -> SweepResult:
        """:meth:`expire_sessions`, and then the earliest deadline left: what a waker re-arms at.

        The deadline comes from the sweep's own statements when the store can tell it
        (``expire_due_next``, see :class:`~sessionflow.application.ports.ExpiredBatch`), else from
        :meth:`next_deadline`, read after the expired events were delivered to the subscribers. Either way it
        may be earlier than the truth (a session completed since), never later, except for deadlines another
        process wrote after the sweep read them.
        """
        return self._timeouts.sweep(now, batch_size, next_deadline=True, limit=limit)

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of any live session, or ``None``."""
        return self._store.next_deadline()

    @property
    def waker(self) -> Waker | None:
        """What wakes this manager at its deadlines (see :meth:`start_timeouts`), or ``None``."""
        return self._timeouts.waker

    def start_timeouts(self, waker: Waker | None = None, *,
                       cleanup_interval: timedelta = timedelta(minutes=5)) -> Waker:
        """Expire sessions at their deadlines from now on, in the background; returns the waker.

        Without ``waker``, the one given to the constructor is used, else a new default one sweeping every
        ``cleanup_interval`` as a safety net (:class:`sessionflow.SessionManager`: an
        :class:`~sessionflow.adapters.apscheduler.ApschedulerWaker`). A waker with a ``bind(manager)``
        method is bound to this manager first. Starting sweeps at once, in the calling thread: sessions that
        fell due while nothing ran are expired when this returns. Stopped by :meth:`stop_timeouts`,
        :meth:`close` or leaving the ``with`` block. Idempotent. Raises :class:`~sessionflow.errors.StoreError`
        if the manager is closed or the store fails during the first sweep.
        """
        if self._closed:
            raise StoreError("the manager is closed")
        return self._timeouts.start(self, waker, cleanup_interval)

    def stop_timeouts(self) -> None:
        """Stop the waker (if any); sessions still expire lazily on reads and on :meth:`expire_sessions`."""
        self._timeouts.stop()

    # ------------------------------------------------------------------ maintenance

    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Drop the projection and rebuild it from the events; returns how many sessions were rebuilt.

        ``progress(n)`` is called as sessions are folded. Run it while no other writer is active.
        """
        return rebuild_projection(self._store, progress)

    def verify(self, progress: Callable[[int], object] | None = None) -> builtins.list[Difference]:
        """Fold every history and list each difference from the stored projection (empty: all agree)."""
        return verify_projection(self._store, progress)

    def purge(self, *, closed_before: datetime, archive: Path | Archive | None = None, batch_size: int = 500,
              progress: Callable[[int], object] | None = None) -> PurgeResult:
        """Remove the closed sessions (final state, or deleted) last changed before ``closed_before`` (aware):
        their events and projection rows, ``batch_size`` sessions per transaction; ``progress(n)`` after each
        batch with the sessions it removed.

        With ``archive`` (a folder, created if missing) each whole history is first written there as a JSONL file
        (the format of ``export``), fsynced and renamed into place, before its batch is removed. A session changed
        meanwhile is skipped, never partly removed; live sessions are never touched, nor is the session holding
        the feed's newest event (so no feed position is ever reused). See
        :mod:`~sessionflow.application.retention`. Raises :class:`~sessionflow.errors.InvalidInput` (and changes
        nothing) for a bad argument.
        """
        cutoff, root, size = purge_arguments(closed_before, archive, batch_size, progress)
        writer = self._new_archive(root) if root is not None else cast("Archive | None", archive)
        return purge_closed(self._store, closed_before=cutoff, archive=writer, batch_size=size, progress=progress)

    def _new_archive(self, root: Path) -> Archive:
        """The archive :meth:`purge` writes under ``root`` (here: none; :class:`sessionflow.SessionManager` writes
        JSONL files)."""
        raise InvalidInput("archive", "this manager has no archive format: use sessionflow.SessionManager")

    def ping(self) -> bool:
        """True when the store answers (for readiness checks)."""
        return self._store.ping()
