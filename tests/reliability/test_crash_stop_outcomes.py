"""Real crash stops under concurrent writers: every outcome a writer was told is the truth.

A PostgreSQL server of the test's own is stopped with ``pg_ctl stop -m immediate`` and started again, and a
``redis-server`` of its own (``appendonly yes``, ``appendfsync always``) is killed with ``SIGKILL`` and started
again — at least five times each — while writer threads create sessions, create batches, add notes and update
metadata through managers with a few ``retries`` budgets. Every write carries a marker that finds it on the
server (its user, a note's ``memory_id``, the metadata it sets). Afterwards the server's data is read and each
write's outcome held against it with the three rules (``outcome_checks.judge``): success => applied exactly once;
:class:`OutcomeUnknown` => at most once, its record ids found among the write's events if applied and nowhere if
not; any other error => not applied. At least 200 writes per store must have been in flight at a stop or
attempted during an outage. The counts are printed (``pytest -s``).

Then the same stops under writers that give each write an idempotency key and send it again, with the key, after
any ``StoreError`` or ``OutcomeUnknown``: every write must end in success, applied exactly once.

Slow (some 20 s per store): marked ``slow`` and skipped unless slow tests are asked for (``pytest -m slow``):
``make faults`` runs it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol
from uuid import UUID

import pytest

from sessionflow import OutcomeUnknown, SessionManager, StoreError
from tests.reliability.outcome_checks import Outcome, attempt, truth_for
from tests.reliability.outcome_servers import CrashablePostgres
from tests.support.postgres import PostgresUnavailable, require_postgres
from tests.support.redis import RedisUnavailable, require_redis, throwaway_redis

pytestmark = pytest.mark.slow
#: Collected only when slow tests are asked for (``-m slow``): tests/conftest.py deselects it otherwise.
ONLY_WHEN_SLOW = True

WRITERS = 8
#: The managers' retry budgets (writer ``n`` uses ``RETRIES[n % len(RETRIES)]``).
RETRIES = (1, 2, 3)
MIN_STOPS = 5
MAX_STOPS = 12
MIN_FAULTED = 200
#: Writes a session gets before its writer moves on to another.
WRITES_PER_SESSION = 25
#: A writer's pause after a write that went through (the outages, not the throughput, are the point).
PAUSE = 0.01
#: How long a keyed writer sends one write again before it gives up (longer than any outage here).
KEYED_PATIENCE = 30.0
#: Keyed writes met by a stop: a keyed writer carries one write through each outage (it retries it there).
MIN_KEYED_FAULTED = WRITERS * MIN_STOPS


class Server(Protocol):
    url: str

    def crash(self) -> None: ...

    def start(self) -> None: ...


class _Redis:
    """``RedisServer`` as a :class:`Server`: ``SIGKILL`` and a start on the same port and data."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = server.url

    def crash(self) -> None:
        self.server.kill()

    def start(self) -> None:
        self.server.start()
        assert self.server.url == self.url, "redis-server came back on another port"


@contextlib.contextmanager
def crashable(store: str) -> Iterator[Server]:
    if store == "pg":
        try:
            pg = CrashablePostgres()
        except PostgresUnavailable as error:
            require_postgres(error)
        try:
            pg.start()
            yield pg
        finally:
            pg.close()
        return
    try:
        with throwaway_redis(appendfsync="always") as server:
            yield _Redis(server)
    except RedisUnavailable as error:
        require_redis(error)


# --------------------------------------------------------------------------- the run


@dataclass
class Write:
    """One write a writer attempted: what, its marker, when, and what it was told."""

    kind: str  # create, create_many, add_note, update
    key: str
    session_id: UUID | None
    started: float
    ended: float
    outcome: Outcome


@dataclass
class Run:
    writes: list[Write] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)  # (stopped, back up)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def faulted(self, write: Write) -> bool:
        """In flight when the server stopped, or attempted while it was down."""
        return any(write.started < up and write.ended > down for down, up in self.outages)

    def in_flight(self, write: Write) -> bool:
        return any(write.started < down < write.ended for down, _ in self.outages)

    def faulted_count(self) -> int:
        with self.lock:
            writes = list(self.writes)
        return sum(1 for w in writes if self.faulted(w))


def writer(n: int, manager: SessionManager, run: Run, stop: threading.Event) -> None:
    rnd = random.Random(n)
    mine: dict[UUID, int] = {}  # the writer's sessions and the writes each got
    seq = 0
    performer = f"w{n}"
    while not stop.is_set():
        seq += 1
        key = f"cs{n}x{seq}"
        choice = rnd.random()
        sid: UUID | None = None
        call: Callable[[], Any]
        if not mine or choice < 0.15:
            kind = "create"
            call = partial(manager.create, performer_id=performer, user_id=key, file_paths=["a.py"])
        elif choice < 0.25:
            kind = "create_many"
            items = [{"user_id": f"{key}.{i}", "file_paths": ["a.py"]} for i in range(3)]
            call = partial(manager.create_many, items, performer_id=performer)
        else:
            sid = rnd.choice(list(mine))
            mine[sid] += 1
            if mine[sid] >= WRITES_PER_SESSION:
                del mine[sid]
            if choice < 0.65:
                kind = "add_note"
                call = partial(manager.add_note, sid, file_path="a.py", memory_id=key, status="ok",
                               performer_id=performer)
            else:
                kind = "update"
                call = partial(manager.update, sid, metadata={"m": key}, performer_id=performer)
        started = time.monotonic()
        outcome = attempt(call)
        ended = time.monotonic()
        with run.lock:
            run.writes.append(Write(kind, key, sid, started, ended, outcome))
        if outcome.kind == "success":
            for session in outcome.value if kind == "create_many" else ([outcome.value] if kind == "create" else []):
                mine[session.id] = 0
            time.sleep(PAUSE)


def keyed_writer(n: int, manager: SessionManager, run: Run, stop: threading.Event) -> None:
    """A client that gives each write an idempotency key (its marker) and, after any StoreError or OutcomeUnknown,
    sends the same write with the same key again until it succeeds: the write's one recorded outcome is its
    last, from its first attempt to that success."""
    rnd = random.Random(100 + n)
    mine: dict[UUID, int] = {}
    seq = 0
    performer = f"k{n}"
    while not stop.is_set():
        seq += 1
        key = f"csk{n}x{seq}"
        sid: UUID | None = None
        if not mine or rnd.random() < 0.2:
            kind = "create"
            call: Callable[[], Any] = partial(manager.create, performer_id=performer, user_id=key,
                                              file_paths=["a.py"], idempotency_key=key)
        else:
            sid = rnd.choice(list(mine))
            mine[sid] += 1
            if mine[sid] >= WRITES_PER_SESSION:
                del mine[sid]
            kind = "add_note" if rnd.random() < 0.6 else "update"
            call = (partial(manager.add_note, sid, file_path="a.py", memory_id=key, status="ok",
                            performer_id=performer, idempotency_key=key) if kind == "add_note" else
                    partial(manager.update, sid, metadata={"m": key}, performer_id=performer, idempotency_key=key))
        started = time.monotonic()
        outcome = attempt(call)
        while outcome.kind != "success" and isinstance(outcome.error, StoreError | OutcomeUnknown) and (
                time.monotonic() - started < KEYED_PATIENCE):
            time.sleep(0.05)
            outcome = attempt(call)
        with run.lock:
            run.writes.append(Write(kind, key, sid, started, time.monotonic(), outcome))
        if outcome.kind == "success" and kind == "create":
            mine[outcome.value.id] = 0
        time.sleep(PAUSE)


def crash_under_writers(server: Server, target: Callable[[int, SessionManager, Run, threading.Event], None] = writer,
                        ) -> Run:
    """Run the writers (``target``) while the crasher stops and restarts ``server`` (at least :data:`MIN_STOPS`
    times, until at least :data:`MIN_FAULTED` writes were faulted); return what happened."""
    SessionManager.open(server.url).close()  # the schema
    run = Run()
    stop = threading.Event()
    managers = [SessionManager.open(server.url, retries=retries) for retries in RETRIES]
    threads = [threading.Thread(target=target, args=(n, managers[n % len(managers)], run, stop), name=f"writer-{n}")
               for n in range(WRITERS)]
    rnd = random.Random(7)
    try:
        for thread in threads:
            thread.start()
        while len(run.outages) < MAX_STOPS and (len(run.outages) < MIN_STOPS or run.faulted_count() < MIN_FAULTED):
            time.sleep(rnd.uniform(0.6, 1.2))
            down = time.monotonic()
            server.crash()
            time.sleep(rnd.uniform(0.3, 0.8))
            server.start()
            run.outages.append((down, time.monotonic()))
        time.sleep(1.0)  # the writers settle on the running server
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
        for manager in managers:
            with contextlib.suppress(Exception):
                manager.close()
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return run


# --------------------------------------------------------------------------- the verdicts


@dataclass
class Stored:
    """What the server holds, indexed by the writes' markers."""

    sessions_of: Counter[str] = field(default_factory=Counter)  # user -> sessions created for it
    session_ids_of: dict[str, set[UUID]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)  # memory_id -> note_added events
    updates: Counter[str] = field(default_factory=Counter)  # metadata marker -> updated events
    record_of: dict[str, set[UUID]] = field(default_factory=dict)  # marker -> record ids of its events
    records: set[UUID] = field(default_factory=set)


def read_stored(url: str) -> Stored:
    truth = truth_for(url)
    stored = Stored()
    try:
        for user, event in truth.user_events("cs"):
            stored.records.add(event.record_id)
            if event.event == "created":
                marker = user
                stored.sessions_of[user] += 1
                stored.session_ids_of.setdefault(user, set()).add(event.session_id)
            elif event.event == "note_added":
                marker = str(event.payload.get("memory_id"))
                stored.notes[marker] += 1
            elif event.event == "updated":
                marker = str((event.payload.get("metadata") or {}).get("m"))
                stored.updates[marker] += 1
            else:
                continue
            stored.record_of.setdefault(marker, set()).add(event.record_id)
    finally:
        truth.close()
    return stored


def applied_times(write: Write, stored: Stored, problems: list[str]) -> int:
    if write.kind == "create":
        return stored.sessions_of[write.key]
    if write.kind == "create_many":
        counts = {stored.sessions_of[f"{write.key}.{i}"] for i in range(3)}
        if len(counts) != 1:
            problems.append(f"create_many {write.key}: a torn batch, sessions per item {sorted(counts)}")
        return max(counts)
    if write.kind == "add_note":
        return stored.notes[write.key]
    return stored.updates[write.key]


def rule_breaks(write: Write, applied: int, stored: Stored) -> list[str]:
    """What is wrong with what ``write`` was told, given it is applied ``applied`` times."""
    what = f"{write.kind} {write.key} ({write.outcome.describe()})"
    kind = write.outcome.kind
    if kind == "success" and applied != 1:
        return [f"MISLABEL {what}: success, but applied {applied} times"]
    if kind == "error" and applied != 0:
        return [f"MISLABEL {what}: 'not applied', but applied {applied} times"]
    if kind == "unknown":
        if applied > 1:
            return [f"{what}: applied {applied} times"]
        error = write.outcome.error
        assert isinstance(error, OutcomeUnknown)
        keys = [f"{write.key}.{i}" for i in range(3)] if write.kind == "create_many" else [write.key]
        records = set().union(*(stored.record_of.get(key, set()) for key in keys))
        named = set(error.record_ids)
        if not named:
            return [f"{what}: OutcomeUnknown names no record id"]
        if applied and not named <= records:
            return [f"{what}: applied, but OutcomeUnknown's record ids are not its events'"]
        if not applied and named & stored.records:
            return [f"{what}: not applied, but OutcomeUnknown's record ids are stored"]
        if write.session_id is not None and tuple(error.session_ids) != (write.session_id,):
            return [f"{what}: OutcomeUnknown names sessions {error.session_ids}, not {write.session_id}"]
    return []


@pytest.mark.parametrize("store", [pytest.param("pg", marks=pytest.mark.postgres),
                                   pytest.param("redis", marks=pytest.mark.redis)])
def test_crash_stops_under_writers_mislabel_nothing(store: str) -> None:
    started = time.monotonic()
    with crashable(store) as server:
        run = crash_under_writers(server)
        stored = read_stored(server.url)
    problems: list[str] = []
    counts: Counter[str] = Counter()
    for write in run.writes:
        applied = applied_times(write, stored, problems)
        problems += rule_breaks(write, applied, stored)
        scope = "faulted" if run.faulted(write) else "calm"
        counts[f"{scope} {write.outcome.kind} {'applied' if applied else 'not-applied'}"] += 1
        counts[f"{scope} writes"] += 1
        if run.in_flight(write):
            counts["in flight at a stop"] += 1
        if write.outcome.kind == "error":
            counts[f"error {type(write.outcome.error).__name__}"] += 1
    faulted = counts["faulted writes"]
    errors = ", ".join(f"{k.removeprefix('error ')} {v}" for k, v in sorted(counts.items()) if k.startswith("error "))
    took = time.monotonic() - started
    print(f"\n[{store}] {len(run.outages)} crash stops, {len(run.writes)} writes in {took:.1f} s; "
          f"{faulted} faulted (in flight at a stop or attempted during an outage; {counts['in flight at a stop']} "
          f"in flight)\n"
          f"[{store}] faulted: success {counts['faulted success applied']} (applied), "
          f"error {counts['faulted error not-applied']} (not applied), "
          f"OutcomeUnknown {counts['faulted unknown applied'] + counts['faulted unknown not-applied']} "
          f"({counts['faulted unknown applied']} applied, {counts['faulted unknown not-applied']} not); "
          f"errors by type: {errors or 'none'}\n"
          f"[{store}] applied: {sum(v for k, v in counts.items() if k.endswith(' applied'))}, "
          f"not applied: {sum(v for k, v in counts.items() if k.endswith('not-applied'))}, "
          f"mislabelled: {len(problems)}")
    assert len(run.outages) >= MIN_STOPS
    assert faulted >= MIN_FAULTED, f"only {faulted} writes met an outage"
    assert not problems, f"{len(problems)} outcomes were not the truth, e.g.:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("store", [pytest.param("pg", marks=pytest.mark.postgres),
                                   pytest.param("redis", marks=pytest.mark.redis)])
def test_crash_stops_under_keyed_retrying_writers_apply_each_write_once(store: str) -> None:
    """Writers that retry each write with its idempotency key after any StoreError or OutcomeUnknown: every write
    ends in success, applied exactly once — none lost, none doubled, whatever the stops did to its attempts."""
    with crashable(store) as server:
        run = crash_under_writers(server, keyed_writer)
        stored = read_stored(server.url)
    problems: list[str] = []
    for write in run.writes:
        applied = applied_times(write, stored, problems)
        if write.outcome.kind != "success":
            problems.append(f"{write.kind} {write.key}: still {write.outcome.describe()} after its retries")
        elif applied != 1:
            problems.append(f"{write.kind} {write.key}: retried with its key, applied {applied} times")
    faulted = sum(1 for write in run.writes if run.faulted(write))
    print(f"\n[{store}] keyed: {len(run.outages)} crash stops, {len(run.writes)} writes, {faulted} faulted, "
          f"{len(problems)} not applied exactly once")
    assert len(run.outages) >= MIN_STOPS
    assert faulted >= MIN_KEYED_FAULTED, f"only {faulted} writes met an outage"
    assert not problems, f"{len(problems)} writes were not applied exactly once, e.g.:\n" + "\n".join(problems[:20])
