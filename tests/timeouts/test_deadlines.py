"""Deadline rules: the pure functions, and the manager applying them on every backend.

``expires_at = created_at + ttl``; with sliding on, every write and every ``touch`` moves it to
``now + ttl``, never beyond ``created_at + max_lifetime``; ``touch`` is always explicit and recorded; reads
never present an overdue session as live, and record its expiry once, as ``"system"``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionflow import EventType, InvalidTransition, SessionManager, SessionStatus, replay
from sessionflow.domain.deadlines import DeadlinePolicy, initial_deadline, refreshed_deadline
from sessionflow.testing import ManualClock

MakeManager = Callable[..., SessionManager]
MS = timedelta(milliseconds=1)
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def expired_events(mgr: SessionManager, sid: UUID) -> list[tuple[str, datetime]]:
    return [(e.performer_id, e.timestamp) for e in mgr.history(sid) if e.event is EventType.EXPIRED]


# ---------------------------------------------------------------- the pure rules


def test_initial_deadline_is_creation_plus_ttl() -> None:
    assert initial_deadline(T0, timedelta(minutes=30)) == (T0 + timedelta(minutes=30), None)


def test_initial_deadline_with_a_cap_records_the_cap_and_never_exceeds_it() -> None:
    assert initial_deadline(T0, timedelta(hours=1), timedelta(hours=8)) == (T0 + timedelta(hours=1),
                                                                            T0 + timedelta(hours=8))
    # A cap shorter than the TTL wins from the start.
    assert initial_deadline(T0, timedelta(hours=2), timedelta(hours=1)) == (T0 + timedelta(hours=1),
                                                                            T0 + timedelta(hours=1))


def test_refreshed_deadline_is_now_plus_ttl_capped() -> None:
    cap = T0 + timedelta(hours=1)
    assert refreshed_deadline(T0 + timedelta(minutes=10), timedelta(minutes=30), cap) == T0 + timedelta(minutes=40)
    assert refreshed_deadline(T0 + timedelta(minutes=50), timedelta(minutes=30), cap) == cap
    assert refreshed_deadline(T0 + timedelta(minutes=50), timedelta(minutes=30), None) == T0 + timedelta(minutes=80)


def test_deadlines_are_truncated_to_the_millisecond() -> None:
    created = T0 + timedelta(microseconds=1_999)
    expires_at, cap = initial_deadline(created, timedelta(seconds=1, microseconds=500), timedelta(minutes=5))
    assert expires_at == T0 + timedelta(seconds=1, milliseconds=2)  # 1.0035 s after T0, truncated
    assert cap == T0 + timedelta(minutes=5, milliseconds=1)
    assert refreshed_deadline(created, timedelta(seconds=1), None).microsecond % 1000 == 0


def test_the_default_policy_neither_slides_nor_caps() -> None:
    assert DeadlinePolicy() == DeadlinePolicy(sliding=False, max_lifetime=None)


@given(
    created_ms=st.integers(0, 10**9),
    ttl_ms=st.integers(1_000, 10**8),
    life_ms=st.none() | st.integers(1_000, 10**9),
    steps=st.lists(st.integers(0, 10**8), max_size=20),
)
def test_a_sliding_deadline_never_passes_the_cap_and_never_moves_back(created_ms: int, ttl_ms: int,
                                                                       life_ms: int | None,
                                                                       steps: list[int]) -> None:
    created = T0 + timedelta(milliseconds=created_ms)
    ttl = timedelta(milliseconds=ttl_ms)
    life = None if life_ms is None else timedelta(milliseconds=life_ms)
    deadline, cap = initial_deadline(created, ttl, life)
    assert (cap is None) == (life is None)
    now = created
    for step in steps:
        now += timedelta(milliseconds=step)
        if now >= deadline:
            break  # expired: nothing refreshes it any more
        refreshed = refreshed_deadline(now, ttl, cap)
        assert refreshed >= deadline
        assert cap is None or refreshed <= cap
        assert refreshed <= now + ttl
        deadline = refreshed


# ---------------------------------------------------------------- the manager applies them


def test_a_new_session_expires_ttl_after_creation(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock, default_ttl=timedelta(minutes=20))
    s = mgr.create(performer_id="u1")
    assert (s.created_at, s.expires_at, s.max_expires_at) == (clock.now(), clock.now() + timedelta(minutes=20), None)
    t = mgr.create(performer_id="u1", ttl=timedelta(seconds=90))
    assert t.expires_at == clock.now() + timedelta(seconds=90)
    created = mgr.history(t.id)[0]
    assert created.payload["ttl_seconds"] == 90.0
    assert created.payload["expires_at"] == "2030-01-01T12:01:30.000Z"


@pytest.mark.parametrize("write", ["start", "record_file", "add_note", "update", "touch"])
def test_with_sliding_every_write_moves_the_deadline(make_manager: MakeManager, clock: ManualClock,
                                                     write: str) -> None:
    mgr = make_manager(clock=clock, sliding=True, default_ttl=timedelta(minutes=10))
    s = mgr.create(performer_id="u1", file_paths=["a.txt"])
    if write in ("record_file",):
        s = mgr.start(s.id, performer_id="u1")
    clock.advance(timedelta(minutes=7))
    writes = {
        "start": lambda: mgr.start(s.id, performer_id="u1"),
        "record_file": lambda: mgr.record_file(s.id, "a.txt", performer_id="u1"),
        "add_note": lambda: mgr.add_note(s.id, file_path="a.txt", status="seen", performer_id="u1"),
        "update": lambda: mgr.update(s.id, metadata={"k": 1}, performer_id="u1"),
        "touch": lambda: mgr.touch(s.id, performer_id="u1"),
    }
    after = writes[write]()
    assert after.expires_at == clock.now() + timedelta(minutes=10)
    last = mgr.history(s.id)[-1]
    assert last.payload["expires_at"] == after.expires_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert replay(mgr.history(s.id)).expires_at == after.expires_at
    # The old deadline passes: still live.
    clock.advance(timedelta(minutes=5))
    assert mgr.get(s.id).status in (SessionStatus.PENDING, SessionStatus.IN_PROGRESS)
    assert mgr.expire_sessions() == 0


@pytest.mark.parametrize("write", ["start", "add_note", "update"])
def test_without_sliding_only_touch_moves_the_deadline(make_manager: MakeManager, clock: ManualClock,
                                                       write: str) -> None:
    mgr = make_manager(clock=clock, default_ttl=timedelta(minutes=10))
    s = mgr.create(performer_id="u1")
    clock.advance(timedelta(minutes=7))
    writes = {
        "start": lambda: mgr.start(s.id, performer_id="u1"),
        "add_note": lambda: mgr.add_note(s.id, file_path="a.txt", status="seen", performer_id="u1"),
        "update": lambda: mgr.update(s.id, metadata={"k": 1}, performer_id="u1"),
    }
    assert writes[write]().expires_at == s.expires_at
    assert "expires_at" not in mgr.history(s.id)[-1].payload
    touched = mgr.touch(s.id, performer_id="u2")
    assert touched.expires_at == clock.now() + timedelta(minutes=10)
    event = mgr.history(s.id)[-1]
    assert (event.event, event.performer_id, event.timestamp) == (EventType.TOUCHED, "u2", clock.now())


def test_reads_never_slide_the_deadline(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock, sliding=True, default_ttl=timedelta(minutes=10))
    s = mgr.create(performer_id="u1")
    for _ in range(3):
        clock.advance(timedelta(minutes=3))
        assert mgr.get(s.id).expires_at == s.expires_at
        assert mgr.get_active(s.id) is not None
        mgr.list()
    assert len(mgr.history(s.id)) == 1  # a read records nothing while the session is live
    clock.advance(timedelta(minutes=1))
    assert mgr.get(s.id).status is SessionStatus.EXPIRED


def test_the_cap_bounds_sliding_and_touch(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock, sliding=True, default_ttl=timedelta(minutes=10),
                       max_lifetime=timedelta(minutes=25))
    s = mgr.create(performer_id="u1")
    cap = s.created_at + timedelta(minutes=25)
    assert s.max_expires_at == cap
    mgr.start(s.id, performer_id="u1")
    deadlines = []
    for _ in range(6):  # keep the session busy every four minutes: it still dies at the cap
        clock.advance(timedelta(minutes=4))
        if clock.now() >= cap:
            break
        deadlines.append(mgr.touch(s.id, performer_id="u1").expires_at)
    assert deadlines == sorted(deadlines)
    assert max(deadlines) == cap
    assert all(d <= cap for d in deadlines)
    clock.set(cap - MS)
    assert mgr.get(s.id).status is SessionStatus.IN_PROGRESS
    clock.set(cap)
    assert mgr.get(s.id).status is SessionStatus.EXPIRED
    assert expired_events(mgr, s.id) == [("system", cap)]


def test_a_cap_shorter_than_the_ttl_is_the_deadline(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock, default_ttl=timedelta(hours=2), max_lifetime=timedelta(hours=1))
    s = mgr.create(performer_id="u1")
    assert s.expires_at == s.max_expires_at == clock.now() + timedelta(hours=1)
    clock.advance(timedelta(minutes=30))
    assert mgr.touch(s.id, performer_id="u1").expires_at == s.max_expires_at


def test_touch_is_refused_once_terminal_and_appends_nothing(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock)
    s = mgr.create(performer_id="u1")
    mgr.fail(s.id, reason="stop", performer_id="u1")
    with pytest.raises(InvalidTransition):
        mgr.touch(s.id, performer_id="u1")
    assert [e.event for e in mgr.history(s.id)] == [EventType.CREATED, EventType.FAILED]


# ---------------------------------------------------------------- lazy expiry


@pytest.mark.parametrize("read", ["get", "get_active", "list"])
@pytest.mark.parametrize("state", ["pending", "in_progress"])
def test_a_read_past_the_deadline_records_the_expiry_once_as_system(make_manager: MakeManager, clock: ManualClock,
                                                                    read: str, state: str) -> None:
    mgr = make_manager(clock=clock, default_ttl=timedelta(minutes=10))
    s = mgr.create(performer_id="u1")
    if state == "in_progress":
        mgr.start(s.id, performer_id="u1")
    clock.set(s.expires_at)  # due exactly at the deadline
    reads = {
        "get": lambda: mgr.get(s.id),
        "get_active": lambda: mgr.get_active(s.id),
        "list": lambda: mgr.list(status=["pending", "in_progress"]),
    }
    result = reads[read]()
    if read == "get":
        assert result.status is SessionStatus.EXPIRED
        assert result.closed_by == "system"
    else:
        assert result in (None, [])
    clock.advance(timedelta(minutes=5))
    for again in reads.values():  # later reads of every kind find it expired and record nothing more
        again()
    assert [s_.id for s_ in mgr.list(status="expired")] == [s.id]
    assert mgr.expire_sessions() == 0
    assert expired_events(mgr, s.id) == [("system", s.expires_at)]
    last = mgr.history(s.id)[-1]
    assert (last.source_state, last.target_state) == (SessionStatus(state), SessionStatus.EXPIRED)


def test_a_write_past_the_deadline_finds_the_session_expired(make_manager: MakeManager, clock: ManualClock) -> None:
    mgr = make_manager(clock=clock, default_ttl=timedelta(minutes=10))
    s = mgr.create(performer_id="u1")
    mgr.start(s.id, performer_id="u1")
    clock.advance(timedelta(minutes=11))
    with pytest.raises(InvalidTransition):
        mgr.touch(s.id, performer_id="u1")
    with pytest.raises(InvalidTransition):
        mgr.complete(s.id, performer_id="u1")
    assert expired_events(mgr, s.id) == [("system", clock.now())]
    assert [e.event for e in mgr.history(s.id)] == [EventType.CREATED, EventType.STARTED, EventType.EXPIRED]
