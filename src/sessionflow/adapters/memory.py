"""``InMemoryEventStore``: the event store kept in this process's memory.

It enforces exactly what the SQL store enforces — one event per ``(session_id, version)``, atomic appends,
the exclusive-user check inside the write — so the contract suite runs unchanged on it. It is for tests,
examples and short-lived embedded use: nothing survives the process.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from sessionflow.application.idempotency import StoredKey
from sessionflow.application.ports import Change, ExpiryDecider, Query
from sessionflow.domain.models import Session, SessionEvent, SessionStatus
from sessionflow.errors import (
    ActiveSessionExists,
    BatchRejected,
    ConcurrencyConflict,
    IdempotencyKeyInFlight,
    StoreError,
)

__all__ = ["InMemoryEventStore"]


class InMemoryEventStore:
    """A thread-safe event store in memory. See :class:`sessionflow.application.ports.EventStore`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._events: dict[UUID, list[SessionEvent]] = {}
        self._sessions: dict[UUID, Session] = {}
        self._record_ids: set[UUID] = set()
        # (expires_at, session_id) of live sessions; stale entries are skipped lazily.
        self._deadlines: list[tuple[datetime, UUID]] = []
        # The global feed: every stored event in position order (positions from 1, in commit order).
        self._feed: list[SessionEvent] = []
        self._positions: list[int] = []
        self._consumers: dict[str, int] = {}
        # Idempotency keys by (scope, key).
        self._keys: dict[tuple[str, str], StoredKey] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def append(self, change: Change) -> None:
        session = change.session
        with self._lock:
            self._check_open()
            self._append_locked(change)
            self._push(session)

    def append_many(self, changes: Sequence[Change]) -> None:
        """Append every change or none (see :meth:`EventStore.append_many`): each is checked against the
        store as the batch's earlier changes leave it, then all are applied."""
        with self._lock:
            self._check_open()
            overlay: dict[UUID, Session] = {}
            record_ids: set[UUID] = set()
            keys: set[tuple[str, str]] = set()
            for index, change in enumerate(changes):
                try:
                    self._check_locked(change, overlay, record_ids, keys)
                except (ConcurrencyConflict, ActiveSessionExists, IdempotencyKeyInFlight) as error:
                    raise BatchRejected(index, error) from error
                overlay[change.session.id] = change.session
                record_ids.update(e.record_id for e in change.events)
            for change in changes:
                self._append_locked(change)
                self._push(change.session)

    def _check_locked(self, change: Change, overlay: dict[UUID, Session] | None = None,
                      batch_ids: set[UUID] | None = None, batch_keys: set[tuple[str, str]] | None = None) -> None:
        """Raise what :meth:`append` would for ``change``, with ``overlay`` (sessions a batch changes before
        it) over the stored sessions."""
        session = change.session
        current = overlay.get(session.id) if overlay else None
        if current is None:
            current = self._sessions.get(session.id)
        actual = current.version if current is not None else 0
        if actual != change.expected_version:
            raise ConcurrencyConflict(session.id, expected_version=change.expected_version,
                                      actual_version=actual)
        versions = [e.version for e in change.events]
        if versions != list(range(actual + 1, actual + 1 + len(versions))) or session.version != actual + len(
                versions):
            raise ConcurrencyConflict(session.id, expected_version=change.expected_version,
                                      actual_version=actual)
        if any(e.record_id in self._record_ids or (batch_ids and e.record_id in batch_ids) for e in change.events):
            raise StoreError(f"duplicate record id in change for session {session.id}", session_id=session.id)
        if change.exclusive_user is not None:
            others: Iterable[Session] = self._sessions.values()
            if overlay:  # the batch's own sessions as it leaves them, then the stored ones it does not change
                others = itertools.chain(overlay.values(),
                                         (s for sid, s in self._sessions.items() if sid not in overlay))
            for other in others:
                if (other.user_id == change.exclusive_user and other.id != session.id
                        and other.status is SessionStatus.IN_PROGRESS and other.deleted_at is None
                        and not (change.decided_at is not None and other.is_overdue(change.decided_at))):
                    raise ActiveSessionExists(session.id, user_id=change.exclusive_user,
                                              active_session_id=other.id)
        record = change.idempotency
        if record is not None:
            token = (record.scope, record.key)
            stored = self._keys.get(token)
            if (stored is not None and stored.expires_at > record.created_at) or (
                    batch_keys is not None and token in batch_keys):
                raise IdempotencyKeyInFlight(record.key)
            if batch_keys is not None:
                batch_keys.add(token)

    def _append_locked(self, change: Change) -> None:
        session = change.session
        self._check_locked(change)
        last = self._positions[-1] if self._positions else 0
        stored = [e.evolve(position=last + i) for i, e in enumerate(change.events, 1)]
        self._events.setdefault(session.id, []).extend(stored)
        self._feed.extend(stored)
        self._positions.extend(e.position for e in stored)  # type: ignore[misc]
        self._record_ids.update(e.record_id for e in change.events)
        self._sessions[session.id] = session
        record = change.idempotency
        if record is not None:
            self._keys[record.scope, record.key] = StoredKey(record.fingerprint, session.id, session.version,
                                                             record.expires_at)

    def find_key(self, scope: str, key: str) -> StoredKey | None:
        """The stored idempotency key (see :class:`~sessionflow.application.ports.KeepsIdempotencyKeys`)."""
        with self._lock:
            self._check_open()
            return self._keys.get((scope, key))

    def drop_expired_keys(self, now: datetime, limit: int = 10_000) -> int:
        """Remove up to ``limit`` idempotency keys expired at or before ``now``."""
        with self._lock:
            self._check_open()
            expired = [token for token, stored in self._keys.items() if stored.expires_at <= now][:limit]
            for token in expired:
                del self._keys[token]
            return len(expired)

    def _push(self, session: Session) -> None:
        due = session.due_at
        if due is not None:
            heapq.heappush(self._deadlines, (due, session.id))

    def get(self, session_id: UUID, *, fresh: bool = True) -> Session | None:
        self._check_open()
        return self._sessions.get(session_id)

    def history(self, session_id: UUID) -> list[SessionEvent]:
        with self._lock:
            self._check_open()
            return list(self._events.get(session_id, ()))

    def query(self, query: Query) -> list[Session]:
        """Sessions matching the filters, in the order of their ``created`` events' feed positions (see
        :class:`Query`); nothing after an anchor (``query.after``) that does not exist."""
        with self._lock:
            self._check_open()
            anchor = 0
            if query.after is not None:
                if query.after not in self._sessions:
                    return []
                anchor = self._created(query.after)
            backwards = query.newest_first
            rows = [(self._created(s.id), s) for s in self._sessions.values() if self._matches(s, query)]
        if query.after is not None:
            rows = [row for row in rows if (row[0] < anchor if backwards else row[0] > anchor)]
        rows.sort(key=lambda row: row[0], reverse=backwards)
        return [s for _, s in rows[query.offset: query.offset + query.limit]]

    def _created(self, session_id: UUID) -> int:
        """The feed position of the session's ``created`` event (its place in list order)."""
        position = self._events[session_id][0].position
        assert position is not None  # every stored event has its position
        return position

    @staticmethod
    def _matches(s: Session, q: Query) -> bool:
        if not q.include_deleted and s.deleted_at is not None:
            return False
        if q.status is not None and s.status not in q.status:
            return False
        if q.user_id is not None and s.user_id != q.user_id:
            return False
        if q.workspace_id is not None and s.workspace_id != q.workspace_id:
            return False
        if q.module_name is not None and s.module_name != q.module_name:
            return False
        if q.lifecycle is not None and s.lifecycle != q.lifecycle:
            return False
        if q.created_after is not None and s.created_at < q.created_after:
            return False
        if q.created_before is not None and s.created_at >= q.created_before:
            return False
        return not (q.live_after is not None and s.is_overdue(q.live_after))

    def count_query(self, query: Query) -> dict[str, int]:
        """How many sessions match the filters of ``query``, per status (its page and order ignored)."""
        counts: dict[str, int] = {}
        with self._lock:
            self._check_open()
            for s in self._sessions.values():
                if self._matches(s, query):
                    counts[s.status] = counts.get(s.status, 0) + 1
        return counts

    def query_deadlines(self, after: datetime, until: datetime, limit: int, *,
                        user_id: str | None = None) -> list[Session]:
        """Up to ``limit`` live sessions whose deadline is ``after < d <= until``, soonest first."""
        with self._lock:
            self._check_open()
            found = [(due, s) for s in self._sessions.values()
                     if (due := s.due_at) is not None and after < due <= until
                     and (user_id is None or s.user_id == user_id)]
        return [s for _, s in heapq.nsmallest(limit, found, key=lambda item: item[0])]

    def count(self, status: str | None = None) -> int:
        with self._lock:
            self._check_open()
            return sum(1 for s in self._sessions.values()
                       if s.deleted_at is None and (status is None or s.status == status))

    def _live_deadline(self, entry: tuple[datetime, UUID]) -> bool:
        s = self._sessions.get(entry[1])
        return s is not None and s.due_at == entry[0]

    def _prune(self) -> None:
        while self._deadlines and not self._live_deadline(self._deadlines[0]):
            heapq.heappop(self._deadlines)

    def next_deadline(self) -> datetime | None:
        with self._lock:
            self._check_open()
            self._prune()
            return self._deadlines[0][0] if self._deadlines else None

    def has_due(self, now: datetime) -> bool:
        deadline = self.next_deadline()
        return deadline is not None and deadline <= now

    def expire_due(self, now: datetime, limit: int, decide: ExpiryDecider) -> list[Change]:
        applied: list[Change] = []
        with self._lock:
            self._check_open()
            self._prune()
            due: list[Session] = []
            seen: set[UUID] = set()
            while self._deadlines and len(due) < limit and self._deadlines[0][0] <= now:
                entry = heapq.heappop(self._deadlines)
                if self._live_deadline(entry) and entry[1] not in seen:
                    seen.add(entry[1])
                    due.append(self._sessions[entry[1]])
            # All-or-nothing like one SQL transaction: stage, then commit.
            staged: list[Change] = []
            for session in due:
                change = decide(session, now)
                if change is not None:
                    staged.append(change)
            snapshot_sessions = dict(self._sessions)
            snapshot_events = {k: len(v) for k, v in self._events.items()}
            snapshot_ids = set(self._record_ids)
            snapshot_feed = len(self._feed)
            try:
                for change in staged:
                    self._append_locked(change)
                    applied.append(change)
            except BaseException:
                self._sessions = snapshot_sessions
                for key, length in snapshot_events.items():
                    del self._events[key][length:]
                self._record_ids = snapshot_ids
                del self._feed[snapshot_feed:]
                del self._positions[snapshot_feed:]
                for session in due:
                    self._push(session)
                raise
            applied_ids = {c.session.id for c in applied}
            for session in due:
                if session.id not in applied_ids:
                    self._push(session)
            for change in applied:  # a timeout may lead to a state with a deadline of its own
                self._push(change.session)
        return applied

    def read_events(self, after: int, limit: int, *, user_id: str | None = None) -> list[SessionEvent]:
        with self._lock:
            self._check_open()
            start = bisect.bisect_right(self._positions, after)
            if user_id is None:
                return self._feed[start:start + limit]
            found: list[SessionEvent] = []
            for event in self._feed[start:]:
                if self._sessions[event.session_id].user_id == user_id:
                    found.append(event)
                    if len(found) == limit:
                        break
            return found

    def read_named_events(self, after: int, limit: int, names: frozenset[str], *,
                          user_id: str | None = None) -> list[SessionEvent]:
        """Up to ``limit`` events named in ``names`` with a position above ``after`` (of ``user_id``'s sessions)."""
        with self._lock:
            self._check_open()
            found: list[SessionEvent] = []
            for event in self._feed[bisect.bisect_right(self._positions, after):]:
                if str(event.event) in names and (
                        user_id is None or self._sessions[event.session_id].user_id == user_id):
                    found.append(event)
                    if len(found) == limit:
                        break
            return found

    def last_position(self) -> int:
        with self._lock:
            self._check_open()
            return self._positions[-1] if self._positions else 0

    def consumer_position(self, name: str) -> int:
        with self._lock:
            self._check_open()
            return self._consumers.get(name, 0)

    def consumer_positions(self) -> dict[str, int]:
        with self._lock:
            self._check_open()
            return dict(self._consumers)

    def save_consumer_position(self, name: str, position: int, now: datetime) -> None:
        with self._lock:
            self._check_open()
            if position > self._consumers.get(name, 0):
                self._consumers[name] = position

    def session_ids(self) -> list[UUID]:
        with self._lock:
            self._check_open()
            return list(self._events)

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        with self._lock:
            self._check_open()
            snapshot = [list(events) for _, events in sorted(self._events.items(), key=lambda kv: str(kv[0]))]
        yield from snapshot

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        with self._lock:
            self._check_open()
            snapshot = sorted(self._sessions.values(), key=lambda s: str(s.id))
        yield from snapshot

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        sessions = {s.id: s for s in rebuilt}  # fold everything first: a failure changes nothing
        with self._lock:
            self._check_open()
            self._sessions = sessions
            self._deadlines = [(due, s.id) for s in sessions.values() if (due := s.due_at) is not None]
            heapq.heapify(self._deadlines)
        return len(sessions)

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        with self._lock:
            self._check_open()
            return self._sessions.get(session_id), list(self._events.get(session_id, ()))

    def purge_sessions(self, expected: Mapping[UUID, int]) -> list[UUID]:
        """Remove the events and projection of each session still at its ``expected`` version, except the one
        holding the feed's newest event (see :mod:`sessionflow.application.retention`); the ids removed."""
        with self._lock:
            self._check_open()
            newest = self._feed[-1].session_id if self._feed else None
            removed = [sid for sid, version in expected.items()
                       if sid != newest and (s := self._sessions.get(sid)) is not None and s.version == version]
            gone = set(removed)
            if removed:
                self._keys = {token: stored for token, stored in self._keys.items() if stored.session_id not in gone}
            for sid in removed:
                del self._sessions[sid]
                self._record_ids.difference_update(e.record_id for e in self._events.pop(sid, ()))
            if gone:
                self._feed = [e for e in self._feed if e.session_id not in gone]
                self._positions = [e.position or 0 for e in self._feed]  # stored events all have one
            return removed

    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"InMemoryEventStore(sessions={len(self._sessions)})"
