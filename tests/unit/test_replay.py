"""``replay`` folds a history into the session; corrupt histories are refused, never half-folded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from sessionflow import CorruptHistory, SessionManager, SessionStatus, apply, replay
from sessionflow.domain.models import EventType, Session, SessionEvent
from sessionflow.testing import ManualClock

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def manager(clock: ManualClock) -> Iterator[SessionManager]:
    with SessionManager.in_memory(clock=clock, default_ttl=timedelta(minutes=10)) as mgr:
        yield mgr


def _completed(manager: SessionManager, clock: ManualClock) -> Session:
    s = manager.create(performer_id="u1", user_id="u1", workspace_id="ws", module_name="auth",
                       file_paths=["a.py", "b.py"], metadata={"k": 1})
    clock.advance(timedelta(seconds=1))
    manager.start(s.id, performer_id="u1")
    clock.advance(timedelta(seconds=1))
    manager.update(s.id, current_file="a.py", performer_id="u1")
    manager.record_file(s.id, "a.py", performer_id="u1")
    manager.add_note(s.id, file_path="a.py", memory_id="m-1", status="stored", performer_id="u1")
    clock.advance(timedelta(minutes=5))
    manager.touch(s.id, performer_id="u1")
    manager.record_file(s.id, "b.py", error="parse error", performer_id="u1")
    manager.update(s.id, metadata={"k": 2}, current_file=None, performer_id="u1")
    clock.advance(timedelta(seconds=1))
    return manager.complete(s.id, performer_id="u1")


def test_replay_of_a_full_history_equals_the_session(manager: SessionManager, clock: ManualClock) -> None:
    done = _completed(manager, clock)
    history = manager.history(done.id)
    assert [e.event for e in history] == [
        EventType.CREATED, EventType.STARTED, EventType.UPDATED, EventType.FILE_RECORDED, EventType.NOTE_ADDED,
        EventType.TOUCHED, EventType.FILE_RECORDED, EventType.UPDATED, EventType.COMPLETED]
    session = replay(history)
    assert session == done
    assert session == manager.get(done.id)
    assert session.status is SessionStatus.COMPLETED
    assert session.version == len(history)
    assert session.progress.processed_files == 1
    assert session.progress.failed_files == ("b.py",)
    assert session.progress.current_file is None
    assert [(r.path, r.error) for r in session.file_results] == [("a.py", None), ("b.py", "parse error")]
    assert [(n.file_path, n.memory_id, n.status) for n in session.notes] == [("a.py", "m-1", "stored")]
    assert session.metadata == {"k": 2}
    assert session.closed_by == "u1"
    assert session.closed_at == history[-1].timestamp
    assert session.updated_at == history[-1].timestamp
    assert session.expires_at == T0 + timedelta(seconds=2, minutes=5) + timedelta(minutes=10)


def test_each_prefix_replays_to_that_version(manager: SessionManager, clock: ManualClock) -> None:
    done = _completed(manager, clock)
    history = manager.history(done.id)
    state = None
    for n, event in enumerate(history, start=1):
        state = apply(state, event)
        assert replay(history[:n]) == state
        assert state.version == n
        assert state.status is event.target_state
        assert state.updated_at == event.timestamp


def test_replay_is_deterministic_and_needs_no_manager(manager: SessionManager, clock: ManualClock) -> None:
    done = _completed(manager, clock)
    history = manager.history(done.id)
    manager.close()
    assert replay(history) == replay(list(history)) == done
    assert replay(iter(history)) == done


def test_failed_and_expired_and_deleted(manager: SessionManager, clock: ManualClock) -> None:
    failed = manager.fail(manager.create(performer_id="u1").id, reason="  disk full  ", performer_id="u2")
    assert replay(manager.history(failed.id)) == failed
    assert failed.failure_reason == "disk full"
    assert failed.closed_by == "u2"

    due = manager.create(performer_id="u1", ttl=timedelta(seconds=5))
    clock.advance(timedelta(seconds=5))
    expired = manager.expire(due.id)
    assert replay(manager.history(due.id)) == expired
    assert expired.status is SessionStatus.EXPIRED
    assert expired.closed_by == "system"

    gone = manager.delete(failed.id, performer_id="u1")
    replayed = replay(manager.history(failed.id))
    assert replayed == gone
    assert replayed.deleted_at == clock.now()
    assert replayed.status is SessionStatus.FAILED


def test_created_sets_every_field_from_the_payload(manager: SessionManager) -> None:
    s = manager.create(performer_id="p", user_id="u", workspace_id="w", module_name="m",
                       file_paths=["x", "y", "z"], metadata={"a": [1]}, ttl=timedelta(seconds=90))
    (created,) = manager.history(s.id)
    r = replay([created])
    assert (r.user_id, r.workspace_id, r.module_name) == ("u", "w", "m")
    assert r.file_paths == ("x", "y", "z")
    assert r.progress.total_files == 3
    assert r.ttl_seconds == 90
    assert r.expires_at == T0 + timedelta(seconds=90)
    assert r.metadata == {"a": [1]}
    assert r.status is SessionStatus.PENDING
    assert r.version == 1


# ---------------------------------------------------------------- corrupt histories


@pytest.fixture
def history(manager: SessionManager, clock: ManualClock) -> list[SessionEvent]:
    return manager.history(_completed(manager, clock).id)


def test_empty_history(history: list[SessionEvent]) -> None:
    with pytest.raises(CorruptHistory, match="empty"):
        replay([])


def test_missing_created(history: list[SessionEvent]) -> None:
    with pytest.raises(CorruptHistory, match="does not start with 'created'"):
        replay(history[1:])


@pytest.mark.parametrize("missing", [1, 4, 7])
def test_gap_in_versions(history: list[SessionEvent], missing: int) -> None:
    with pytest.raises(CorruptHistory, match="follows version"):
        replay(history[:missing] + history[missing + 1:])


def test_out_of_order(history: list[SessionEvent]) -> None:
    swapped = [history[0], history[2], history[1], *history[3:]]
    with pytest.raises(CorruptHistory):
        replay(swapped)


def test_duplicated_event(history: list[SessionEvent]) -> None:
    with pytest.raises(CorruptHistory):
        replay([*history[:3], history[2], *history[3:]])


def test_event_of_another_session(history: list[SessionEvent]) -> None:
    stranger = history[3].model_copy(update={"session_id": uuid4()})
    with pytest.raises(CorruptHistory, match="belongs to session"):
        replay([*history[:3], stranger, *history[4:]])


def test_two_histories_concatenated(manager: SessionManager, history: list[SessionEvent]) -> None:
    other = manager.history(manager.create(performer_id="u1").id)
    with pytest.raises(CorruptHistory):
        replay(history + other)


def test_created_twice_or_not_first(history: list[SessionEvent]) -> None:
    with pytest.raises(CorruptHistory, match="'created' must be version 1"):
        replay([history[0], history[0].model_copy(update={"version": 2})])
    with pytest.raises(CorruptHistory, match="'created' must be version 1"):
        replay([history[0].model_copy(update={"version": 2})])


def test_apply_without_a_session_needs_created(history: list[SessionEvent]) -> None:
    with pytest.raises(CorruptHistory):
        apply(None, history[1])
