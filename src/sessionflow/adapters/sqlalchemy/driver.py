"""The driver-level fast path the SQLite and PostgreSQL recorders share: the frame of an append, a primary-key
read and a sweep batch on a driver connection.

SQLAlchemy Core builds and compiles statements generically; on the operations every transition does that
costs more than the database work, and so does a pool checkout and check-in. :class:`DriverRecorder` runs the
hot operations on driver connections its :class:`~sessionflow.adapters.sqlalchemy.connections.ConnectionPolicy`
keeps, with SQL written once per dialect; each recorder supplies that SQL (a
:class:`~sessionflow.adapters.sqlalchemy.rows.FastSql`), its policy, and the dialect's part of each operation
(:meth:`DriverRecorder._append_on`, :meth:`DriverRecorder._append_many_on`, :meth:`DriverRecorder._expire_on`).
Reads by a primary key (``get``, an idempotency key's ``find_key``): :meth:`DriverRecorder._row_fast`.
Each operation has one path: through the store's retry framework (``_run``), on a lease of the policy.

Also here: the sweep's row helpers both recorders' batches use (:func:`decide_claimed`, :func:`expiry_update`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from sessionflow.adapters.outcome import WriteOutcome
from sessionflow.adapters.sqlalchemy.connections import ConnectionPolicy, Lease
from sessionflow.adapters.sqlalchemy.layout import ExpiryUpdate, column_index
from sessionflow.adapters.sqlalchemy.persistence import SqlAlchemyEventStore
from sessionflow.adapters.sqlalchemy.rows import _ms, session_from_row
from sessionflow.adapters.sqlalchemy.tables import to_millis
from sessionflow.application.ports import Change, ExpiredBatch, ExpiryDecider
from sessionflow.domain.models import SessionStatus
from sessionflow.domain.values import compact_json
from sessionflow.errors import ActiveSessionExists, BatchRejected, ConcurrencyConflict, IdempotencyKeyInFlight

__all__ = ["DriverRecorder", "active_query", "decide_claimed", "expiry_update", "payload_text"]

logger = logging.getLogger("sessionflow.store")

T = TypeVar("T")

#: The place of ``due_at`` in a ``sessions`` row.
DUE = column_index("due_at")
_IN_PROGRESS = SessionStatus.IN_PROGRESS.value


def active_query(param: str) -> str:
    """The statement reading another session of a user in progress and not past its deadline, with ``param`` as
    the placeholder; its parameters: the user, the status, the session's own key, the moment (epoch ms, or -1)."""
    return (f"SELECT id FROM sessions WHERE user_id = {param} AND status = {param} AND deleted_at IS NULL "
            f"AND id <> {param} AND expires_at > {param} LIMIT 1")


class DriverRecorder(SqlAlchemyEventStore):
    """A recorder whose appends, primary-key reads and sweep batches run on the driver connection.

    A subclass sets ``_fast`` (its SQL) and its connection policy (:meth:`_use`) in its ``__init__``, and
    implements the three ``_..._on`` methods.
    """

    #: The store's connections (a subclass builds its policy in its ``__init__``).
    _connections: ConnectionPolicy

    def _use(self, connections: ConnectionPolicy) -> None:
        """Run the hot path on ``connections``."""
        self._connections = connections

    def _release_connections(self) -> None:
        self._connections.close()

    def _checkout(self) -> Lease:
        """A driver connection for one hot-path operation (see :mod:`~sessionflow.adapters.sqlalchemy.connections`)."""
        return self._connections.lease()

    # ------------------------------------------------------------------ the hot operations

    def _append_fast(self, changes: list[Change], outcome: WriteOutcome, many: bool) -> None:
        """One attempt at appending ``changes`` — one change, or with ``many`` a batch in one transaction — on
        a driver connection, its statements on the lease's cursor. ``outcome`` is unsure from the moment the
        connection is made (a connection refused sent nothing) until the database answers; a lost connection
        is discarded; driver errors propagate (to ``_run``)."""
        raw = self._checkout()
        outcome.unsure = True
        try:
            if many:
                self._append_many_on(raw.driver_connection, changes, raw.cursor())
            else:
                self._append_on(raw.driver_connection, changes[0], raw.cursor())
        except BaseException as error:
            if self._lost_connection(error):
                raw.invalidate()
                raise
            outcome.unsure = False  # answered: the database refused it
            if not many and isinstance(error, self._integrity_error):
                change = changes[0]
                raise ConcurrencyConflict(change.session.id, expected_version=change.expected_version,
                                          actual_version=None) from error
            raise
        finally:
            raw.close()
        outcome.unsure = False

    def _append_on(self, conn: Any, change: Change, cursor: Any) -> None:
        """The dialect's append of ``change`` on driver connection ``conn``, its statements on ``cursor``,
        atomic; raises :class:`ConcurrencyConflict` when the version does not match."""
        raise NotImplementedError

    def _append_many_on(self, conn: Any, changes: list[Change], cursor: Any) -> None:
        """The dialect's append of every change of ``changes`` in one transaction on driver connection ``conn``;
        raises :class:`BatchRejected` naming the first change whose version does not match."""
        raise NotImplementedError

    def _check_exclusive(self, execute: Callable[..., Any], change: Change, key: Any) -> None:
        """With ``change.exclusive_user``: :class:`ActiveSessionExists` when that user has another session in
        progress and not past its deadline (by ``execute``, in the caller's write transaction)."""
        user = change.exclusive_user
        if user is None:
            return
        now = change.decided_at
        found = execute(self._fast.select_active,
                        (user, _IN_PROGRESS, key, -1 if now is None else to_millis(now))).fetchone()
        if found is not None:
            other = found[0]
            raise ActiveSessionExists(change.session.id, user_id=user,
                                      active_session_id=other if isinstance(other, UUID) else UUID(other))

    def _rejected(self, index: int, change: Change, error: BaseException) -> BaseException:
        """What a batch raises when its change ``index`` failed with ``error``."""
        if isinstance(error, (ConcurrencyConflict, ActiveSessionExists, IdempotencyKeyInFlight)):
            return BatchRejected(index, error)
        if isinstance(error, self._integrity_error):
            return BatchRejected(index, ConcurrencyConflict(change.session.id,
                                                            expected_version=change.expected_version,
                                                            actual_version=None))
        return error

    def _on_driver(self, raw: Lease, work: Callable[[Lease], T]) -> T:
        """``work(raw)`` on the checked-out ``raw``, given back afterwards (discarded if the connection was
        lost)."""
        try:
            return work(raw)
        except BaseException as error:
            if self._lost_connection(error):
                raw.invalidate()
            raise
        finally:
            raw.close()

    def _get_fast(self, session_id: UUID) -> Any:
        sql = self._fast
        return self._row_fast(sql.select_session, (sql.uuid(session_id),))

    def _row_fast(self, statement: str, params: tuple[Any, ...]) -> Any:
        """The one row (or None) ``statement`` reads by a primary key (see :meth:`_row_on`)."""
        return self._run(partial(self._row_on, statement, params))

    def _row_on(self, statement: str, params: tuple[Any, ...]) -> Any:
        """One attempt at the read of :meth:`_row_fast`, on a driver connection's cursor (a lost connection is
        discarded)."""
        return self._on_driver(self._checkout(), lambda raw: raw.cursor().execute(statement, params).fetchone())

    def _sweep_connection(self) -> Lease:
        """The driver connection a sweep batch runs on (the store's sweeper, if its policy keeps one)."""
        return self._connections.sweep_lease()

    def _expire_due_fast(self, now: datetime, limit: int, decide: ExpiryDecider, with_next: bool) -> ExpiredBatch:
        """One sweep batch on the driver connection; driver errors propagate to ``_run``.

        A wake-up of the waker runs this once, and each driver call gives the GIL away (with other threads
        busy in Python, getting it back costs up to the interpreter's switch interval), so each recorder's
        batch makes as few as it can. Its claim also reads the earliest deadline it leaves (``with_next``).
        """
        return self._on_driver(self._sweep_connection(),
                               lambda raw: self._expire_on(raw.driver_connection, now, limit, decide, with_next))

    def _expire_on(self, conn: Any, now: datetime, limit: int, decide: ExpiryDecider,
                   with_next: bool) -> ExpiredBatch:
        """The dialect's sweep batch on driver connection ``conn`` (see :meth:`_expire_due_fast`)."""
        raise NotImplementedError


# ---------------------------------------------------------------------- the sweep's rows


def decide_claimed(rows: list[Any], decide: ExpiryDecider, now: datetime, earliest: list[int | None],
                   width: int | None = None) -> Iterator[tuple[Change, int | None]]:
    """Decide a sweep's claimed rows, popping each (so it is dropped once decoded; the list holds them last
    first). Yields each change the decider makes — keeping its new state and events, not the state it was
    decided on — with its new deadline in epoch ms; ``earliest[0]`` (given the unclaimed sessions' earliest)
    ends as the earliest deadline of every session left live. ``width``: the session columns of a longer row.
    """
    while rows:
        row = rows.pop()
        decided = decide(session_from_row(row if width is None else row[:width]), now)
        if decided is None:  # refused: it keeps its deadline
            due = row[DUE]
        else:
            s = decided.session
            due = _ms(s.due_at)
            yield (decided if decided.previous is None else Change(
                s, decided.events, decided.expected_version, decided.exclusive_user, decided.decided_at)), due
        if due is not None and (earliest[0] is None or due < earliest[0]):
            earliest[0] = due


def expiry_update(change: Change, due: int | None, key: Any) -> ExpiryUpdate:
    """A swept session's compare-and-set update (its key as given)."""
    s = change.session
    return ExpiryUpdate(str(s.status), s.version, to_millis(s.updated_at), _ms(s.closed_at), s.closed_by,
                        _ms(s.expires_at), due, s.failure_reason, key, change.expected_version)


def payload_text(payload: Mapping[str, Any]) -> str:
    """An event payload as the JSON text a driver binds."""
    return compact_json(payload) if payload else "{}"

