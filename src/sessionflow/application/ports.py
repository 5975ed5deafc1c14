"""The ports: what the application needs from the outside world, as small protocols.

Adapters implement them (``InMemoryEventStore``, ``SqlAlchemyEventStore``, ``ApschedulerWaker``); tests may
subclass them with fakes. Nothing here imports a database, scheduler or web framework.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, runtime_checkable
from uuid import UUID

from sessionflow.domain.models import Session, SessionEvent

__all__ = [
    "Change",
    "Clock",
    "EventStore",
    "ExpiredBatch",
    "ExpiryDecider",
    "Query",
    "SystemClock",
    "Waker",
]


class Clock(Protocol):
    """Tells the time. Must return a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock: reads ``datetime.now(UTC)`` at each call, so freezegun and time-machine move it."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


@dataclass(frozen=True, slots=True)
class Change:
    """Events to append to one session, and the session they lead to.

    ``expected_version`` is the version the writer read (0 for a new session); the store appends only if
    it is still the stored version, else raises :class:`~sessionflow.errors.ConcurrencyConflict`.
    ``previous`` is the state the change was decided on, when known.
    ``exclusive_user``: when set, the store refuses the change (``ActiveSessionExists``) if another
    session of that user is in progress and not past its deadline at ``decided_at``, checked inside the
    same transaction.
    """

    session: Session
    events: tuple[SessionEvent, ...]
    expected_version: int
    exclusive_user: str | None = None
    decided_at: datetime | None = None
    #: The session the change was decided on (lets a store write only the fields that changed).
    previous: Session | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """Filters and a page for :meth:`EventStore.query`. Results are in creation order: the order of the feed
    positions of the sessions' ``created`` events (commit order, so sessions created one after another list in
    that order), oldest first, or newest first when ``newest_first`` is true.

    ``created_after`` / ``created_before``: a half-open range of creation times, ``created_after <= created_at
    < created_before`` (either bound may be left out). ``after``: keyset pagination — only the sessions
    strictly after the session of this id (the anchor) in list order (``offset`` then skips within them); no
    session at all when the anchor does not exist.
    """

    status: frozenset[str] | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    module_name: str | None = None
    limit: int = 100
    offset: int = 0
    include_deleted: bool = False
    # Live sessions whose deadline is at or before this instant are left out (they are being expired).
    live_after: datetime | None = field(default=None)
    lifecycle: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    after: UUID | None = None
    newest_first: bool = False


#: Given an overdue session and the time, return the change that expires it (or ``None`` to leave it).
ExpiryDecider = Callable[[Session, datetime], Change | None]


class ExpiredBatch(NamedTuple):
    """One sweep batch as a store reports it from ``expire_due_next`` (an optional method of a store: see
    :meth:`EventStore.expire_due`).

    ``changes``: the applied changes. ``next_deadline``: the earliest deadline of a live session once they
    were written, as far as the batch could tell from what it read (``None``: no live session has one) —
    what a waker re-arms at, with no further read. ``known`` is false when the batch could not tell (a
    full batch, a session changed by someone else meanwhile, a store without that knowledge): read
    :meth:`EventStore.next_deadline` instead.
    """

    changes: list[Change]
    next_deadline: datetime | None = None
    known: bool = False


@runtime_checkable
class EventStore(Protocol):
    """Where events are appended and sessions are read.

    Implementations must make each :meth:`append` atomic (all its events and the new projection, or
    nothing) and enforce one event per ``(session_id, version)``.
    """

    def append(self, change: Change) -> None:
        """Append the events and store the new projection, atomically.

        Raises ``ConcurrencyConflict`` when the stored version is not ``change.expected_version``,
        ``ActiveSessionExists`` when ``change.exclusive_user`` has another session in progress, and
        ``StoreError`` when the store itself fails; in each case nothing was written.
        """
        ...

    def append_many(self, changes: Sequence[Change]) -> None:
        """Append every change, in order, in one transaction: all of them or none.

        Later changes may build on earlier ones (the same session twice, its second ``expected_version``
        the first's new version; an exclusive-user check sees the batch's earlier starts). Raises
        :class:`~sessionflow.errors.BatchRejected` naming the first change refused (its ``error`` a
        ``ConcurrencyConflict`` or ``ActiveSessionExists``), or ``StoreError``; in each case nothing of
        the batch was written.
        """
        ...

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        """The stored projection of a session (deleted ones included), or ``None``.

        ``fresh=False`` allows a store with a read cache to return its cached copy without checking it
        against the database (the caller will detect a stale copy through the version check of
        :meth:`append`). Stores that cache set the attribute ``caches_reads = True``.
        """
        ...

    def history(self, session_id: UUID) -> list[SessionEvent]:
        """Every event of a session, oldest first (empty if it never existed)."""
        ...

    def query(self, query: Query) -> list[Session]:
        """Sessions matching the filters, in creation order (see :class:`Query`)."""
        ...

    def count(self, status: str | None = None) -> int:
        """How many sessions (not deleted) there are, optionally of one status."""
        ...

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a live (pending or in progress, not deleted) session."""
        ...

    def has_due(self, now: datetime) -> bool:
        """Whether any live session's deadline is at or before ``now``."""
        ...

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        """Claim up to ``limit`` overdue live sessions (earliest deadline first), apply the changes
        ``decide`` returns for them, in one transaction, and return the applied changes.

        A session another sweeper holds or has already expired is skipped, so each overdue session is
        expired exactly once however many sweepers run.

        A store may also offer ``expire_due_next(now, limit, decide) -> ExpiredBatch``: the same batch, and the
        earliest deadline left once it is written, found by the batch's own statements. The manager uses it
        when present (:meth:`SessionManager.sweep`), so a waker needs no extra read before it re-arms.
        """
        ...

    def session_ids(self) -> list[UUID]:
        """The id of every session that has events (deleted ones included)."""
        ...

    def read_events(self, after: int, limit: int, *, user_id: str | None = None) -> list[SessionEvent]:
        """The global feed: up to ``limit`` events whose ``position`` is above ``after``, in position order
        (with ``user_id``: only the events of that user's sessions).

        Positions increase in commit order: an event never becomes visible at a position lower than one a
        reader has already been given. There may be gaps (a transaction that rolled back).
        """
        ...

    def last_position(self) -> int:
        """The highest feed position (0: no event yet)."""
        ...

    def consumer_position(self, name: str) -> int:
        """The position stored for the feed consumer ``name`` (0: none stored)."""
        ...

    def save_consumer_position(self, name: str, position: int, now: datetime) -> None:
        """Store ``position`` for the feed consumer ``name``; a position lower than the stored one changes
        nothing (the stored position never moves back)."""
        ...

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        """Every session's whole history (one list per session, oldest event first), streamed."""
        ...

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        """Every stored projection (deleted sessions included), streamed."""
        ...

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        """Replace the whole projection by ``rebuilt`` atomically; returns how many were written."""
        ...

    def ping(self) -> bool:
        """True when the store answers."""
        ...

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        """A session's projection and history read from one consistent snapshot."""
        ...

    def close(self) -> None:
        """Release resources (connections, files). The store is unusable afterwards."""
        ...


class Waker(Protocol):
    """Wakes the engine at the earliest deadline. Owns no timeout: the deadlines live in the store."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def notify_deadline(self, deadline: datetime) -> None:
        """A write set ``deadline``: re-arm if it is earlier than the armed wake-up."""
        ...


def sequence_of(changes: Sequence[Change]) -> list[SessionEvent]:
    """All events of ``changes`` in order."""
    return [event for change in changes for event in change.events]
