"""A PostgreSQL failover under writers: the primary is SIGKILLed, its synchronous standby promoted, and everything
that spoke to the database through the multi-host URL goes on by itself.

Two local throwaway clusters (``tests/support/postgres_pair.py``): a primary and a synchronous streaming standby.
Four writer threads (creates, batches, notes, updates, each with its marker: the writers of
``test_crash_stop_outcomes``) and two managers running timeout wakers, all on
``?host=primary&host=standby&target_session_attrs=read-write``. Short-lived sessions fall due before, during and
after the switch. Then:

* **0 acknowledged writes lost**, and every error truthful: each write's outcome is held against what the promoted
  standby holds (success => applied exactly once; ``OutcomeUnknown`` => at most once, naming its records; any
  other error => not applied);
* every writer resumes (the time from the kill, and from the promotion, to its first write acknowledged after it,
  is printed: ``pytest -s``) within 30 s;
* each short-lived session gets exactly one ``expired`` event, across both wakers and the switch;
* the wakers' LISTEN watchers listen again (on the promoted standby) and announce it with a ``"changed"`` notice,
  on which the wakers read the deadlines they may have missed;
* a feed consumer (``SessionManager.consume``, following, on the same URL) runs through the switch, started again
  whenever the lost connection stops it, as a consumer's supervisor would: it skips nothing (every event the
  promoted standby holds is handed to it) and sees positions strictly increasing (no event ever shows up below one
  it was handed). A restart may hand over again the events of the one batch whose position was not stored
  (at-least-once, docs/events.md): those repeats are counted apart, and must be events already seen.

Slow (some 40 s): marked ``slow`` and collected only when slow tests are asked for (``make faults``).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

import pytest

from sessionflow import SessionEvent, SessionManager
from sessionflow.adapters.apscheduler import ApschedulerWaker
from sessionflow.adapters.sqlalchemy.notifications import PostgresChangeWatcher
from sessionflow.application.watching import Notice
from tests.reliability.outcome_checks import PgTruth
from tests.reliability.test_crash_stop_outcomes import RETRIES, Run, applied_times, read_stored, rule_breaks, writer
from tests.support.postgres import PostgresUnavailable, require_postgres
from tests.support.postgres_pair import PostgresPair, postgres_pair

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
#: Collected only when slow tests are asked for (``-m slow``): tests/conftest.py deselects it otherwise.
ONLY_WHEN_SLOW = True

WRITERS = 4
#: The longest a writer may take to resume after the kill.
RESUME_WITHIN = 30.0
SCENARIO_BUDGET = 90.0
SHORT_TTL = timedelta(seconds=2)
DUE_SESSIONS = 15  # created before the kill, and again after the switch
#: The consumer's batch: at most this many events are handed over again when a restart follows a lost save.
CONSUMER_BATCH = 20


def _expiring_manager(url: str) -> tuple[SessionManager, list[tuple[float, Notice]]]:
    """A manager whose waker sweeps at the deadlines (and every 2 s), and the notices its watcher hands out."""
    manager = SessionManager.open(url, retries=3)
    waker = manager.start_timeouts(cleanup_interval=timedelta(seconds=2))
    assert isinstance(waker, ApschedulerWaker)
    watcher = waker.watcher
    assert isinstance(watcher, PostgresChangeWatcher)
    notices: list[tuple[float, Notice]] = []
    watcher.subscribe(lambda notice: notices.append((time.monotonic(), notice)))
    return manager, notices


def _watcher_of(manager: SessionManager) -> PostgresChangeWatcher:
    waker = manager.waker
    assert isinstance(waker, ApschedulerWaker)
    watcher = waker.watcher
    assert isinstance(watcher, PostgresChangeWatcher)
    return watcher


def _create_due(url: str, label: str) -> list[UUID]:
    with SessionManager.open(url, retries=3) as creator:
        sessions = creator.create_many([{"user_id": f"fo-{label}-{i}", "ttl": SHORT_TTL}
                                        for i in range(DUE_SESSIONS)], performer_id="creator")
    return [session.id for session in sessions]


def _wait_expired_once(truth: PgTruth, sessions: list[UUID], timeout: float) -> dict[UUID, int]:
    """Wait until each session has an ``expired`` event; how many each has."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {sid: sum(1 for e in truth.history(sid) if e.event == "expired") for sid in sessions}
        if all(counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


@dataclass
class FeedLog:
    """What a feed consumer was handed, run by run (a run ends when ``consume`` raises)."""

    seen: list[int] = field(default_factory=list)
    seen_set: set[int] = field(default_factory=set)
    #: A position handed over again (at the start of a run, after a lost save): (run, position).
    repeats: list[tuple[int, int]] = field(default_factory=list)
    #: A position never seen before, handed over below one already seen: the feed went back.
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs: int = 0

    def handle(self, event: SessionEvent) -> None:
        position = event.position
        assert position is not None
        if position in self.seen_set:
            self.repeats.append((self.runs, position))
        elif self.seen and position < self.seen[-1]:
            self.out_of_order.append((self.runs, position))
        else:
            self.seen.append(position)
            self.seen_set.add(position)


def _consumer(url: str, log: FeedLog, stop: threading.Event) -> None:
    """Follow the feed as the consumer ``failover-feed`` until ``stop``; start it again when it raises."""
    with SessionManager.open(url, retries=3) as manager:
        while not stop.is_set():
            log.runs += 1
            try:
                manager.consume("failover-feed", log.handle, batch_size=CONSUMER_BATCH, stop=stop,
                                poll_interval=0.2)
            except Exception as error:  # the connection was lost: start again from the stored position
                log.errors.append(type(error).__name__)
                stop.wait(0.2)


def _caught_up(log: FeedLog, last: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not (log.seen and log.seen[-1] >= last):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _all_positions(manager: SessionManager) -> list[int]:
    """Every position the store holds, in order."""
    positions: list[int] = []
    while page := manager.events(after=positions[-1] if positions else 0, limit=10_000):
        positions += [event.position for event in page if event.position is not None]
    return positions


def _resume_times(run: Run, killed: float, promoted: float) -> dict[int, tuple[float, float]]:
    """Per writer: seconds from the kill, and from the promotion, to its first write acknowledged after the kill."""
    first: dict[int, float] = {}
    for write in sorted(run.writes, key=lambda w: w.ended):
        number = int(re.match(r"cs(\d+)x", write.key).group(1))  # type: ignore[union-attr]
        if write.started >= killed and write.outcome.kind == "success" and number not in first:
            first[number] = write.ended
    return {n: (ended - killed, ended - promoted) for n, ended in first.items()}


def test_writers_resume_after_a_failover_with_nothing_acknowledged_lost() -> None:
    began = time.monotonic()
    try:
        pair_context = postgres_pair()
        pair: PostgresPair = pair_context.__enter__()
    except PostgresUnavailable as error:
        require_postgres(error)
    try:
        url = pair.url
        SessionManager.open(url).close()  # the schema, on the primary (replicated to the standby)
        run = Run()
        stop = threading.Event()
        managers = [SessionManager.open(url, retries=retries) for retries in RETRIES]
        expiring = [_expiring_manager(url) for _ in range(2)]
        threads = [threading.Thread(target=writer, args=(n, managers[n % len(managers)], run, stop),
                                    name=f"writer-{n}") for n in range(WRITERS)]
        feed, stop_feed = FeedLog(), threading.Event()
        consumer = threading.Thread(target=_consumer, args=(url, feed, stop_feed), name="consumer", daemon=True)
        consumer.start()
        try:
            for thread in threads:
                thread.start()
            time.sleep(2.0)
            due = _create_due(url, "before")  # they fall due while the primary is gone
            down = time.monotonic()
            pair.kill_primary()
            killed = time.monotonic()  # a write begun from now on cannot have reached the old primary
            time.sleep(1.5)  # no primary at all: writes are refused (the standby is read-only)
            pair.promote()
            promoted = time.monotonic()
            run.outages.append((down, promoted))
            deadline = promoted + RESUME_WITHIN
            while len(_resume_times(run, killed, promoted)) < WRITERS and time.monotonic() < deadline:
                time.sleep(0.1)
            due += _create_due(url, "after")
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(120)
        resumed = _resume_times(run, killed, promoted)
        watchers = [_watcher_of(manager) for manager, _ in expiring]
        listening_again = all(w.wait_listening(30) for w in watchers)
        truth = PgTruth(pair.direct_url(pair.standby_port))
        try:
            expired = _wait_expired_once(truth, due, timeout=30)
        finally:
            truth.close()
        with SessionManager.open(pair.direct_url(pair.standby_port)) as reader:
            committed = _all_positions(reader)
        caught_up = _caught_up(feed, committed[-1] if committed else 0, timeout=30)
        stop_feed.set()
        consumer.join(30)
        for manager, _ in expiring:
            manager.close()
        for manager in managers:
            with contextlib.suppress(Exception):
                manager.close()
        stored = read_stored(pair.direct_url(pair.standby_port))
    finally:
        pair_context.__exit__(None, None, None)

    problems: list[str] = []
    counts: Counter[str] = Counter()
    for write in run.writes:
        applied = applied_times(write, stored, problems)
        problems += rule_breaks(write, applied, stored)
        counts[f"{write.outcome.kind} {'applied' if applied else 'not-applied'}"] += 1
        if write.outcome.kind == "error":
            counts[f"error {type(write.outcome.error).__name__}"] += 1
    took = time.monotonic() - began
    slowest = max((times[0] for times in resumed.values()), default=float("nan"))
    after_promotion = max((times[1] for times in resumed.values()), default=float("nan"))
    print(f"\n[failover] {len(run.writes)} writes in {took:.1f} s; promotion {promoted - killed:.2f} s after the "
          f"kill; writers resumed at most {slowest:.2f} s after the kill ({after_promotion:.2f} s after the "
          f"promotion); outcomes: {dict(sorted(counts.items()))}; watcher connections: "
          f"{[w.connections for w in watchers]}; mislabelled: {len(problems)}; consumer: {len(feed.seen)} events "
          f"of {len(committed)}, {feed.runs} runs ({Counter(feed.errors)}), {len(feed.repeats)} handed over again")

    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert not problems, f"{len(problems)} outcomes were not the truth, e.g.:\n" + "\n".join(problems[:20])
    assert counts["success applied"] > 0
    assert sorted(resumed) == list(range(WRITERS)), f"writers that never resumed: {set(range(WRITERS)) - set(resumed)}"
    assert slowest <= RESUME_WITHIN
    assert sorted(set(expired.values())) == [1], f"expired events per session: {Counter(expired.values())}"
    assert listening_again
    for watcher, (_, notices) in zip(watchers, expiring, strict=True):
        assert watcher.connections >= 2, "the watcher did not listen again"
        assert any(at > killed and notice.kind == "changed" for at, notice in notices), \
            "no catch-up notice after the watcher listened again"
    assert not consumer.is_alive(), "the consumer hung"
    assert caught_up, f"the consumer stopped at {feed.seen[-1:]} of {committed[-1:]}"
    assert not feed.out_of_order, f"positions went back: {feed.out_of_order[:20]}"
    assert feed.seen == committed, f"skipped: {sorted(set(committed) - feed.seen_set)[:20]}; " \
                                   f"not stored: {sorted(feed.seen_set - set(committed))[:20]}"
    assert len(feed.repeats) <= CONSUMER_BATCH * (feed.runs - 1), f"repeats: {feed.repeats[:20]}"
    assert took <= SCENARIO_BUDGET, f"the scenario took {took:.1f} s"
