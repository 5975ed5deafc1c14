"""The operations of the SQL store that run on SQLAlchemy Core, whatever the dialect: the reads and queries,
the feed's consumer positions, and the maintenance streams and writes — the expired idempotency keys' removal
among them (``statements.py`` holds their SQL).

:class:`CoreOperations` is a base of :class:`~sessionflow.adapters.sqlalchemy.SqlAlchemyEventStore`, which
provides what they run on (:class:`_Store`: its retry framework, its snapshots, its read cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import Connection, Engine, select

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.sqlalchemy import statements as sql
from sessionflow.adapters.sqlalchemy.listing import counts_statement, deadlines_statement
from sessionflow.adapters.sqlalchemy.retention import purge_rows
from sessionflow.adapters.sqlalchemy.rows import _status, event_from_row, session_from_row
from sessionflow.adapters.sqlalchemy.tables import from_millis, session_events, to_millis
from sessionflow.application.feed import check_position
from sessionflow.application.ports import Query
from sessionflow.domain.models import Session, SessionEvent
from sessionflow.errors import StoreError

__all__ = ["CoreOperations"]

T = TypeVar("T")


class _Store(Protocol):
    """What the operations run on (the store's own members, see ``persistence.py``)."""

    _engine: Engine

    def _check_open(self) -> None: ...

    def _run(self, op: Callable[[], T], *, retry_lost: bool = ..., outcome: WriteOutcome | None = ...) -> T: ...

    def _read(self, work: Callable[[Connection], T]) -> T: ...

    def _write(self, work: Callable[[Connection], T], *, retry_lost: bool = ...,
               outcome: WriteOutcome | None = ...) -> T: ...

    def _snapshot(self, conn: Connection) -> None: ...

    def _forget(self, session_id: UUID) -> None: ...

    def _forget_all(self) -> None: ...


if TYPE_CHECKING:
    _Base = _Store
else:
    _Base = object


class CoreOperations(_Base):
    """The store's operations on SQLAlchemy Core (see the module's docstring)."""

    def history(self, session_id: UUID) -> list[SessionEvent]:
        """Every event of a session, oldest first."""
        rows = self._read(lambda conn: conn.execute(sql.history_statement(session_id)).all())
        return [event_from_row(r) for r in rows]

    def read_events(self, after: int, limit: int, *, user_id: str | None = None) -> list[SessionEvent]:
        """Up to ``limit`` events with a feed position above ``after``, in position order (with ``user_id``:
        only those of that user's sessions)."""
        stmt = sql.events_after(check_position(after), limit, user_id)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [event_from_row(r) for r in rows]

    def read_named_events(self, after: int, limit: int, names: frozenset[str], *,
                          user_id: str | None = None) -> list[SessionEvent]:
        """Up to ``limit`` events named in ``names`` with a feed position above ``after``, in position order (with
        ``user_id``: only those of that user's sessions)."""
        stmt = sql.events_after(check_position(after), limit, user_id).where(
            session_events.c.event.in_(sorted(names)))
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [event_from_row(r) for r in rows]

    def last_position(self) -> int:
        """The highest feed position (0: no event yet)."""
        return int(self._read(lambda conn: conn.execute(sql.LAST_POSITION).scalar_one()))

    def consumer_position(self, name: str) -> int:
        """The stored position of the feed consumer ``name`` (0: none stored)."""
        return self._read(lambda conn: sql.read_consumer_position(conn, name))

    def consumer_positions(self) -> dict[str, int]:
        """The position stored for each feed consumer that has one."""
        return self._read(sql.read_consumer_positions)

    def save_consumer_position(self, name: str, position: int, now: datetime) -> None:
        """Store ``position`` for the feed consumer ``name``; a lower one than stored changes nothing."""
        params = {"name": name, "position": position, "now": to_millis(now)}
        # Safe to repeat (a position never goes down): a retry that succeeds settles a lost attempt.
        self._write(lambda conn: conn.execute(sql.SAVE_CONSUMER_POSITION, params),
                    outcome=WriteOutcome("save_consumer_position"))

    def query(self, query: Query) -> list[Session]:
        """Sessions matching the filters, in creation order (``created_position``; newest first when the query asks)."""
        stmt = sql.query_statement(query)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [session_from_row(r) for r in rows]

    def count(self, status: str | None = None) -> int:
        """How many sessions (not deleted) there are, optionally of one status."""
        stmt = sql.count_statement(status)
        return int(self._read(lambda conn: conn.execute(stmt).scalar_one()))

    def count_query(self, query: Query) -> dict[str, int]:
        """How many sessions match the filters of ``query``, per status (its page and order ignored)."""
        stmt = counts_statement(query)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return {_status(status, "?"): int(n) for status, n in rows}

    def query_deadlines(self, after: datetime, until: datetime, limit: int, *,
                        user_id: str | None = None) -> list[Session]:
        """Up to ``limit`` live sessions whose deadline is ``after < d <= until``, soonest first (the ``due_at``
        index)."""
        stmt = deadlines_statement(after, until, limit, user_id)
        rows = self._read(lambda conn: conn.execute(stmt).all())
        return [session_from_row(r) for r in rows]

    def count_by_status(self) -> dict[str, int]:
        """How many sessions (not deleted) are in each status."""
        rows = self._read(lambda conn: conn.execute(sql.COUNT_BY_STATUS).all())
        return {_status(status, "?"): int(n) for status, n in rows}

    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a live session."""
        value = self._read(lambda conn: conn.execute(sql.NEXT_DEADLINE).scalar())
        return None if value is None else from_millis(int(value))

    def has_due(self, now: datetime) -> bool:
        """Whether a live session's deadline is at or before ``now``."""
        stmt = sql.due_statement(now)
        return self._read(lambda conn: conn.execute(stmt).first()) is not None

    def session_ids(self) -> list[UUID]:
        """The id of every session that has events."""
        rows = self._read(lambda conn: conn.execute(sql.SESSION_IDS).scalars().all())
        return list(rows)

    # ------------------------------------------------------------------ maintenance

    def histories(self, batch_size: int = 1000) -> Iterator[list[SessionEvent]]:
        """Every session's full history, one list per session, streamed in session-id order."""
        self._check_open()
        with self._engine.connect() as conn:
            self._snapshot(conn)
            yield from sql.stream_histories(conn, batch_size)

    def projections(self, batch_size: int = 1000) -> Iterator[Session]:
        """Every projection row (deleted ones included), streamed in id order."""
        self._check_open()
        with self._engine.connect() as conn:
            self._snapshot(conn)
            yield from sql.stream_projections(conn, batch_size)

    def replace_projection(self, rebuilt: Iterable[Session], batch_size: int = 1000) -> int:
        """Delete every projection row and insert ``rebuilt`` instead, in one transaction."""
        self._forget_all()
        return self._write(lambda conn: sql.replace_rows(conn, rebuilt, batch_size), retry_lost=False,
                           outcome=WriteOutcome("replace_projection"))

    def drop_expired_keys(self, now: datetime, limit: int = 10_000) -> int:
        """Remove up to ``limit`` idempotency keys that expired at or before ``now`` (the earliest first), in one
        transaction; how many were removed (see
        :class:`~sessionflow.application.ports.KeepsIdempotencyKeys`)."""
        stmt = sql.drop_keys_statement(now, limit)
        # Safe to repeat: a retry after a lost connection removes what the lost attempt left.
        return int(self._write(lambda conn: conn.execute(stmt).rowcount, outcome=WriteOutcome("drop_expired_keys")))

    def purge_sessions(self, expected: Mapping[UUID, int]) -> list[UUID]:
        """Remove, in one transaction, each session of ``expected`` still at that version — its events, its
        projection row and its idempotency keys —, except the one holding the feed's newest event (see
        ``retention.py``); returns the ids removed."""
        # A retry after a lost connection counts the sessions already gone as removed: the lost attempt (or
        # another purge at the same moment) removed them. Until a retry could run, the outcome is unknown.
        outcome = WriteOutcome("purge", session_ids=list(expected))
        lost = False

        def work(conn: Connection) -> list[UUID]:
            nonlocal lost
            if lost:
                gone = set(expected) - sql.existing_sessions(conn, list(expected))
                return [*purge_rows(conn, {sid: v for sid, v in expected.items() if sid not in gone}), *gone]
            lost = True
            return purge_rows(conn, expected)

        removed = self._write(work, outcome=outcome)
        for sid in removed:
            self._forget(sid)
        return removed

    def read_together(self, session_id: UUID) -> tuple[Session | None, list[SessionEvent]]:
        """Projection and history in one read transaction (one snapshot: see :meth:`_snapshot`), so a writer
        committing in between cannot make them look inconsistent."""

        def op() -> tuple[Session | None, list[SessionEvent]]:
            with self._engine.connect() as conn:
                self._snapshot(conn)
                with conn.begin():
                    row = conn.execute(sql.session_statement(session_id)).first()
                    events = conn.execute(sql.history_statement(session_id)).all()
            return (None if row is None else session_from_row(row)), [event_from_row(r) for r in events]

        return self._run(op)

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            self._read(lambda conn: conn.execute(select(1)).scalar())
        except StoreError:
            return False
        return True
