"""``BatchwiseWaker``: a stop (or its halt event) ends the sweep under way after the batch in hand, which is
committed and delivered; the sessions left due are expired by a later sweep, exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sessionflow import EventType, SessionEvent, SessionManager
from sessionflow.adapters.batchwise_waker import BatchwiseWaker
from sessionflow.testing import ManualClock

T0 = datetime(2030, 1, 1, tzinfo=UTC)
DUE = 50
BATCH = 10


def _overdue(tmp_path: Path) -> tuple[SessionManager, ManualClock]:
    clock = ManualClock(T0)
    manager = SessionManager.open(_url(tmp_path), clock=clock)
    manager.create_many([{"user_id": f"u{i}", "ttl": timedelta(minutes=1)} for i in range(DUE)],
                        performer_id="system")
    clock.advance(timedelta(minutes=2))
    return manager, clock


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'w.db'}"


def _expired(tmp_path: Path) -> int:
    """The sessions whose expiry is recorded (read at a time when none is due: reads expire nothing)."""
    with SessionManager.open(_url(tmp_path), clock=ManualClock(T0)) as reader:
        return len(reader.list(status="expired", limit=1000))


def test_a_halt_during_the_catch_up_sweep_ends_it_after_the_batch_in_hand(tmp_path: Path) -> None:
    manager, _ = _overdue(tmp_path)
    halt = threading.Event()
    heard: list[SessionEvent] = []

    def on_event(event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED:
            heard.append(event)
            halt.set()  # as a SIGTERM handler would, while the first batch is delivered

    manager.subscribe(on_event)
    waker = BatchwiseWaker(halt=halt, batch_size=BATCH)
    try:
        manager.start_timeouts(waker)
        manager.stop_timeouts()
        assert _expired(tmp_path) == BATCH  # that batch whole, and no other
        assert len(heard) == BATCH
        assert halt.is_set()  # a halt given by the caller is never cleared by the waker

        rest = BatchwiseWaker(batch_size=BATCH)  # the next process's sweep expires the rest, exactly once
        manager.start_timeouts(rest)
        manager.stop_timeouts()
        assert _expired(tmp_path) == DUE
        assert len(heard) == DUE
        assert len({event.session_id for event in heard}) == DUE
    finally:
        manager.close()


def test_a_stop_from_a_subscriber_ends_the_sweep_after_its_batch(tmp_path: Path) -> None:
    manager, clock = _overdue(tmp_path)
    waker = BatchwiseWaker(batch_size=BATCH)
    manager.start_timeouts(waker)  # the catch-up sweep expires all that is due now
    assert _expired(tmp_path) == DUE
    manager.create_many([{"user_id": f"v{i}", "ttl": timedelta(minutes=1)} for i in range(DUE)],
                        performer_id="system")
    stopped = threading.Event()

    def on_event(event: SessionEvent) -> None:
        if event.event is EventType.EXPIRED and not stopped.is_set():
            stopped.set()
            waker.stop()  # from inside the sweep: it does not wait for itself

    manager.subscribe(on_event)
    try:
        clock.advance(timedelta(minutes=2))
        waker.wakeup()
        assert stopped.wait(10)
        assert not waker.running
        deadline = threading.Event()
        deadline.wait(0.3)  # (nothing more may happen: the sweep ended)
        assert _expired(tmp_path) == DUE + BATCH
    finally:
        manager.close()


def test_without_a_halt_the_sweep_runs_every_batch(tmp_path: Path) -> None:
    manager, _ = _overdue(tmp_path)
    try:
        waker = BatchwiseWaker(batch_size=BATCH)
        manager.start_timeouts(waker)
        assert _expired(tmp_path) == DUE
        assert waker.running
    finally:
        manager.close()
