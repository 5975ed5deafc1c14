"""The ports: what the application needs from the outside world, as small protocols.

Adapters implement them (``InMemoryEventStore``, ``SqlAlchemyEventStore``, ``ApschedulerWaker``); tests may
subclass them with fakes. Nothing here imports a database, scheduler or web framework.

:class:`EventStore` is what every store implements. What only some stores can do is a capability of its own,
each a small protocol a store satisfies by having its members (no registration, no base class):
:class:`SweepsToNextDeadline`, :class:`PurgesSessions`, :class:`CachesReads`, :class:`WatchesChanges`,
:class:`AwaitsIO`, :class:`CountsByStatus`, :class:`ReportsLatency`, and the reads of an operator's overview
:class:`ListsByDeadline`, :class:`CountsQueries` and :class:`FiltersFeed`; the idempotency keys of safe retries
:class:`KeepsIdempotencyKeys`. The application and the wiring check a
store against them once, when they are built (``isinstance``), never per write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol, runtime_checkable
from uuid import UUID

from sessionflow.application.idempotency import IdempotencyRecord, StoredKey
from sessionflow.application.watching import ChangeWatcher
from sessionflow.domain.models import Session, SessionEvent

__all__ = [
    "AwaitsIO",
    "CachesReads",
    "Change",
    "Clock",
    "CountsByStatus",
    "CountsQueries",
    "EventStore",
    "ExpiredBatch",
    "ExpiryDecider",
    "FiltersFeed",
    "KeepsIdempotencyKeys",
    "LatencyObserver",
    "ListsByDeadline",
    "PurgesSessions",
    "Query",
    "ReportsLatency",
    "SweepsToNextDeadline",
    "SystemClock",
    "Waker",
    "WatchesChanges",
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
    #: The idempotency key to keep with the change, in its transaction (see :class:`KeepsIdempotencyKeys`).
    idempotency: IdempotencyRecord | None = None


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
    """One sweep batch as a store reports it from ``expire_due_next`` (the capability
    :class:`SweepsToNextDeadline`).

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
        :meth:`append`). A store that caches says so with :class:`CachesReads`.
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

        A store may also offer the same batch with the earliest deadline left once it is written
        (:class:`SweepsToNextDeadline`); the manager uses it when the store has it
        (:meth:`SessionManager.sweep`), so a waker needs no extra read before it re-arms.
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


# ---------------------------------------------------------------------------------------------- capabilities
# What only some stores can do. A store has a capability when it has the protocol's members; the manager and
# the wiring check once, when they are built, and use it or do without.

#: Called with an operation's name and its duration in seconds (:class:`ReportsLatency`).
LatencyObserver = Callable[[str, float], object]


@runtime_checkable
class SweepsToNextDeadline(Protocol):
    """A store whose sweep batch also tells the earliest deadline left (SQL, Redis): a waker then re-arms with
    no extra read. Without it the manager calls :meth:`EventStore.expire_due`, then
    :meth:`EventStore.next_deadline`."""

    def expire_due_next(self, now: datetime, limit: int, decide: ExpiryDecider) -> ExpiredBatch:
        """What :meth:`EventStore.expire_due` does, and the earliest deadline of a live session once the batch
        is written, found by the batch's own statements (see :class:`ExpiredBatch`)."""
        ...


@runtime_checkable
class PurgesSessions(Protocol):
    """A store that can remove closed sessions (every store of sessionflow): what
    :meth:`SessionManager.purge` needs. Without it a purge raises :class:`~sessionflow.errors.StoreError`."""

    def purge_sessions(self, expected: Mapping[UUID, int]) -> list[UUID]:
        """In one transaction, remove the events and the projection row of each session of ``expected`` that is
        still at the version given, except the session holding the feed's newest event; return the ids
        removed."""
        ...


@runtime_checkable
class CachesReads(Protocol):
    """A store that keeps a read cache (SQL, Redis): when ``caches_reads`` is true, a write may start from
    ``get(fresh=False)`` (see :meth:`EventStore.get`). Read once, when the manager is built."""

    @property
    def caches_reads(self) -> bool:
        """Whether ``get(fresh=False)`` may answer from the cache."""
        ...


@runtime_checkable
class WatchesChanges(Protocol):
    """A store that can watch its database for other processes' writes (PostgreSQL's ``NOTIFY``, an SQLite
    file's ``data_version``, Redis pub/sub): the waker and the feed's consumers follow the watcher."""

    def change_watcher(self, *, poll_interval: float | None) -> ChangeWatcher | None:
        """A new, unstarted watcher, or ``None`` when there is nothing to watch (an in-memory database).
        ``poll_interval``: seconds between two polls for a watcher that polls (``None``: no polling watcher);
        a watcher that is told of writes ignores it."""
        ...


@runtime_checkable
class AwaitsIO(Protocol):
    """A store whose I/O awaits an asyncio driver when ``awaits_io`` is true (PostgreSQL on psycopg's asyncio
    driver): the asyncio facade then calls it in greenlets on the event loop's thread, where a blocking store
    would run on a worker thread."""

    @property
    def awaits_io(self) -> bool:
        """Whether the store must be called inside ``greenlet_spawn`` on the loop's thread."""
        ...


@runtime_checkable
class CountsByStatus(Protocol):
    """A store that counts the sessions of every status in one read (SQL, Redis): the metrics' gauge uses it,
    else one :meth:`EventStore.count` per status."""

    def count_by_status(self) -> dict[str, int]:
        """How many sessions (not deleted) are in each status; a status with none may be left out."""
        ...


@runtime_checkable
class ListsConsumers(Protocol):
    """A store that lists the feed consumers whose position it keeps (every shipped store): the metrics report
    the lag of each, wherever it runs."""

    def consumer_positions(self) -> dict[str, int]:
        """The position stored for each feed consumer that has one."""
        ...


@runtime_checkable
class ReportsLatency(Protocol):
    """A store that times its round trips (Redis): the metrics observe them."""

    def observe_latency(self, observer: LatencyObserver | None) -> None:
        """Call ``observer(operation, seconds)`` after each operation's round trips (``None``: stop)."""
        ...


@runtime_checkable
class ListsByDeadline(Protocol):
    """A store that reads the sessions of a window of deadlines from its deadline index (every store of
    sessionflow): what ``SessionManager.deadlines_within`` asks for. Without it the manager walks the live
    sessions' list instead (every live session read)."""

    def query_deadlines(self, after: datetime, until: datetime, limit: int, *,
                        user_id: str | None = None) -> list[Session]:
        """Up to ``limit`` live sessions (not deleted) whose deadline ``d`` is ``after < d <= until``, soonest
        first (with ``user_id``: only that user's)."""
        ...


@runtime_checkable
class CountsQueries(Protocol):
    """A store that counts the sessions a list's filters match, per status, in one read (every store of
    sessionflow): what ``SessionManager.count_by_status`` asks for. Without it the manager pages through
    :meth:`EventStore.query`."""

    def count_query(self, query: Query) -> dict[str, int]:
        """How many sessions match the filters of ``query``, per status (its ``limit``, ``offset``, ``after``
        and order are ignored); a status with none may be left out."""
        ...


@runtime_checkable
class FiltersFeed(Protocol):
    """A store that reads the feed's events of some names only (every store of sessionflow): what
    ``SessionManager.events(event=...)`` asks for. Without it the manager reads the whole feed and keeps
    those."""

    def read_named_events(self, after: int, limit: int, names: frozenset[str], *,
                          user_id: str | None = None) -> list[SessionEvent]:
        """What :meth:`EventStore.read_events` returns, only the events whose name is in ``names``: up to
        ``limit`` of them, in position order."""
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


@runtime_checkable
class KeepsIdempotencyKeys(Protocol):
    """A store that keeps idempotency keys (:mod:`sessionflow.application.idempotency`).

    Its :meth:`EventStore.append` and :meth:`EventStore.append_many` keep a change's ``idempotency`` record in
    the change's own transaction, for the session and version the change leaves: one key per ``(scope, key)``.
    When a key of that scope is stored and not expired at the record's ``created_at``, the change is refused
    with :class:`~sessionflow.errors.IdempotencyKeyInFlight` (in a batch: ``BatchRejected`` naming it) and
    nothing is written; an expired one is replaced. Purging a session removes its keys.
    """

    def find_key(self, scope: str, key: str) -> StoredKey | None:
        """The stored key ``key`` of ``scope`` (expired or not), or ``None``."""
        ...

    def drop_expired_keys(self, now: datetime, limit: int = 10_000) -> int:
        """Remove up to ``limit`` keys that expired at or before ``now``; how many were removed."""
        ...
