"""What a write reported, what the server holds, and the three rules that must tie them together.

A write that comes back from the store has one of three outcomes, and each makes a promise about the data:

* **success** — the write was applied, exactly once;
* :class:`~sessionflow.OutcomeUnknown` — it may or may not have been applied (its ``record_ids`` and
  ``session_ids`` say where to look), but never twice;
* any other error (:class:`~sessionflow.StoreError` above all) — it was NOT applied.

:func:`judge` checks one outcome against the count of times the server holds the write (read by a
:class:`PgTruth` or :class:`RedisTruth`, straight from the server, never through the store under test) and fails
with a message that names the mislabel. :class:`Tally` counts outcomes for the long runs.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import psycopg
from sqlalchemy.engine import make_url

import redis
from sessionflow import OutcomeUnknown

__all__ = ["Outcome", "PgTruth", "RedisTruth", "StoredEvent", "Tally", "Truth", "attempt", "check_named", "judge",
           "repetitions", "truth_for"]


@dataclass(frozen=True)
class StoredEvent:
    """One event as the server holds it."""

    record_id: UUID
    session_id: UUID
    version: int
    event: str
    payload: dict[str, Any]


class Truth(Protocol):
    """Reads straight from the server."""

    def history(self, session_id: UUID) -> list[StoredEvent]: ...

    def sessions_of_user(self, user_id: str) -> list[UUID]: ...

    def exists(self, session_id: UUID) -> bool: ...

    def stored_records(self, record_ids: Iterable[UUID]) -> set[UUID]: ...

    def consumer_position(self, name: str) -> int: ...

    def close(self) -> None: ...


class PgTruth:
    """The truth of a PostgreSQL database, on a psycopg connection of its own (autocommit)."""

    def __init__(self, url: str) -> None:
        u = make_url(url)
        self.conn = psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                                    dbname=u.database, autocommit=True, connect_timeout=10)
        self._lock = threading.Lock()

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.conn.execute(query, params).fetchall()

    def history(self, session_id: UUID) -> list[StoredEvent]:
        rows = self._rows("SELECT record_id, session_id, version, event, payload FROM session_events "
                          "WHERE session_id = %s ORDER BY version", (session_id,))
        return [StoredEvent(r[0], r[1], r[2], r[3], dict(r[4] or {})) for r in rows]

    def sessions_of_user(self, user_id: str) -> list[UUID]:
        return [r[0] for r in self._rows("SELECT id FROM sessions WHERE user_id = %s", (user_id,))]

    def exists(self, session_id: UUID) -> bool:
        return bool(self._rows("SELECT 1 FROM sessions WHERE id = %s", (session_id,)))

    def stored_records(self, record_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(record_ids)
        if not ids:
            return set()
        return {r[0] for r in self._rows("SELECT record_id FROM session_events WHERE record_id = ANY(%s)", (ids,))}

    def consumer_position(self, name: str) -> int:
        rows = self._rows("SELECT position FROM sessionflow_consumers WHERE name = %s", (name,))
        return int(rows[0][0]) if rows else 0

    def user_events(self, prefix: str) -> list[tuple[str, StoredEvent]]:
        """Every event of the sessions whose user starts with ``prefix``, with that user."""
        rows = self._rows("SELECT s.user_id, e.record_id, e.session_id, e.version, e.event, e.payload "
                          "FROM session_events e JOIN sessions s ON s.id = e.session_id WHERE s.user_id LIKE %s",
                          (prefix + "%",))
        return [(r[0], StoredEvent(r[1], r[2], r[3], r[4], dict(r[5] or {}))) for r in rows]

    def close(self) -> None:
        self.conn.close()


class RedisTruth:
    """The truth of a Redis store (key prefix ``prefix``), on a client of its own."""

    def __init__(self, url: str, prefix: str = "sessionflow:") -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
        self.prefix = prefix

    def _events(self, key: str, session_id: UUID) -> list[StoredEvent]:
        out = []
        for item in self.client.lrange(key, 0, -1):
            _, record_id, version, event, _, _, _, _, payload = json.loads(item)
            out.append(StoredEvent(UUID(record_id), session_id, int(version), str(event), dict(payload or {})))
        return out

    def history(self, session_id: UUID) -> list[StoredEvent]:
        return self._events(f"{self.prefix}e:{session_id}", session_id)

    def sessions_of_user(self, user_id: str) -> list[UUID]:
        return [UUID(m) for m in self.client.zrange(f"{self.prefix}i:u:={user_id}", 0, -1)]

    def exists(self, session_id: UUID) -> bool:
        return bool(self.client.exists(f"{self.prefix}s:{session_id}"))

    def _all_events(self) -> list[StoredEvent]:
        events: list[StoredEvent] = []
        for key in self.client.scan_iter(match=f"{self.prefix}e:*", count=1000):
            events += self._events(key, UUID(key.rsplit(":", 1)[1]))
        return events

    def stored_records(self, record_ids: Iterable[UUID]) -> set[UUID]:
        wanted = set(record_ids)
        if not wanted:
            return set()
        return {e.record_id for e in self._all_events() if e.record_id in wanted}

    def consumer_position(self, name: str) -> int:
        return int(self.client.hget(f"{self.prefix}consumers", name) or 0)

    def user_events(self, prefix: str) -> list[tuple[str, StoredEvent]]:
        """Every event of the sessions whose user starts with ``prefix``, with that user."""
        out: list[tuple[str, StoredEvent]] = []
        for key in self.client.scan_iter(match=f"{self.prefix}i:u:={prefix}*", count=1000):
            user = key.split(":=", 1)[1]
            for member in self.client.zrange(key, 0, -1):
                out += [(user, e) for e in self.history(UUID(member))]
        return out

    def close(self) -> None:
        self.client.close()


def truth_for(url: str) -> PgTruth | RedisTruth:
    """The truth reader of the server at ``url`` (its own connection, not the store's)."""
    return RedisTruth(url) if url.startswith("redis") else PgTruth(url)


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What a call returned, or what it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def kind(self) -> str:
        """``"success"``, ``"unknown"`` (OutcomeUnknown) or ``"error"`` (anything else raised)."""
        if self.error is None:
            return "success"
        return "unknown" if isinstance(self.error, OutcomeUnknown) else "error"

    def describe(self) -> str:
        if self.error is None:
            return "success"
        return f"{type(self.error).__name__}({self.error})"


def attempt(call: Callable[[], Any]) -> Outcome:
    """Run ``call``; its value or the exception it raised (any exception: the rules decide)."""
    try:
        return Outcome(value=call())
    except Exception as error:
        return Outcome(error=error)


def judge(what: str, outcome: Outcome, applied: int) -> None:
    """The three rules: success => applied exactly once; OutcomeUnknown => applied at most once; any other
    error => not applied. ``applied``: how many times the server holds the write."""
    if outcome.kind == "success":
        assert applied == 1, (f"MISLABEL {what}: reported success, but the server holds the write {applied} "
                              "time(s) (success means: applied exactly once)")
    elif outcome.kind == "unknown":
        assert applied in (0, 1), f"{what}: {outcome.describe()}, but the server holds the write {applied} times"
    else:
        assert applied == 0, (f"MISLABEL {what}: raised {outcome.describe()}, which means 'not applied', but the "
                              f"server holds the write {applied} time(s); it should have been OutcomeUnknown")


def repetitions(what: str, names: list[str], expected: list[str]) -> int:
    """How many times the event names ``expected`` (one write's events) appear, whole, as ``names`` (the events
    a session got since the write began); fails if ``names`` is anything else (a torn or foreign write)."""
    count, rest = divmod(len(names), len(expected))
    assert not rest, f"{what}: the session got {names}, not a whole {expected}"
    assert names == expected * count, f"{what}: the session got {names}, not a whole {expected}"
    return count


def check_named(what: str, error: OutcomeUnknown, truth: Truth, *, sessions: Iterable[UUID] | None,
                new_records: set[UUID] | None, applied: bool, records: bool = True) -> None:
    """An OutcomeUnknown names its write: an operation, the sessions ``sessions`` (when known), and record ids
    that tell — among the write's new events ``new_records`` when it was applied, stored nowhere when not."""
    assert isinstance(error.operation, str), f"{what}: OutcomeUnknown names no operation"
    assert error.operation, f"{what}: OutcomeUnknown names no operation"
    if sessions is not None:
        assert set(error.session_ids) == set(sessions), (
            f"{what}: OutcomeUnknown.session_ids {sorted(map(str, error.session_ids))} are not the write's "
            f"{sorted(map(str, sessions))}")
    if not records:
        return
    assert error.record_ids, f"{what}: OutcomeUnknown names no record id to look the write up by"
    if applied:
        assert new_records is not None
        assert set(error.record_ids) <= new_records, (
            f"{what}: OutcomeUnknown.record_ids {sorted(map(str, error.record_ids))} are not events the write "
            f"added ({sorted(map(str, new_records))})")
    else:
        stored = truth.stored_records(error.record_ids)
        assert not stored, f"{what}: not applied, yet OutcomeUnknown's record ids {sorted(map(str, stored))} exist"


class Tally:
    """Counts of outcomes and of what the server holds, thread-safe (for the long runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()

    def add(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.counts[key] += 1

    def __getitem__(self, key: str) -> int:
        return self.counts[key]
