"""Retention: ``purge`` removes exactly the sessions closed before the cutoff, on every store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from sessionflow import InvalidInput, SessionEvent, SessionManager
from sessionflow.adapters.archive import read_archive, restore_archive
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager, positions_of, requires


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as error:
        return ("error", type(error).__name__)


def _gone(mgr: SessionManager, sid: UUID) -> bool:
    """Whether ``sid`` reads as a session that never existed."""
    return _outcome(lambda: mgr.history(sid)) == ("error", "SessionNotFound")


def _closed_and_live(mgr: SessionManager, clock: ManualClock) -> tuple[dict[str, UUID], dict[str, UUID]]:
    """Old sessions closed every way and old/recent ones that must stay; the newest event is in a live one."""
    old: dict[str, UUID] = {}
    s = mgr.create(user_id="u1", file_paths=["a.py"], performer_id="u1")
    mgr.start(s.id, performer_id="u1")
    mgr.record_file(s.id, "a.py", performer_id="u1")
    old["completed"] = mgr.complete(s.id, performer_id="u1").id
    s = mgr.create(user_id="u2", workspace_id="ws", module_name="m", performer_id="u2")
    old["failed"] = mgr.fail(s.id, reason="broken", performer_id="u2").id
    s = mgr.create(performer_id="p")
    mgr.start(s.id, performer_id="p")
    old["deleted_live"] = mgr.delete(s.id, performer_id="p").id
    old["expired"] = mgr.create(user_id="u3", ttl=timedelta(minutes=1), performer_id="u3").id
    keep: dict[str, UUID] = {}
    keep["old_live"] = mgr.create(user_id="u1", ttl=timedelta(days=60), performer_id="u1").id
    clock.advance(timedelta(minutes=5))
    assert mgr.expire_sessions() == 1
    clock.advance(timedelta(days=10))
    s = mgr.create(user_id="u1", performer_id="u1")
    keep["recent_failed"] = mgr.fail(s.id, reason="late", performer_id="u1").id
    keep["recent_live"] = mgr.create(user_id="u2", ttl=timedelta(days=60), performer_id="u2").id
    return old, keep


class _ChangingArchive:
    """An archive during whose write a writer deletes one of the sessions being purged."""

    def __init__(self, mgr: SessionManager, victim: UUID) -> None:
        self.mgr = mgr
        self.victim = victim
        self.seen: list[UUID] = []

    def write(self, histories: Sequence[Sequence[SessionEvent]]) -> list[UUID]:
        self.seen += [h[0].session_id for h in histories]
        if self.victim in self.seen:
            self.mgr.delete(self.victim, performer_id="meanwhile")
        return [h[0].session_id for h in histories]


class TestPurge(ContractSuite):
    """Retention: purge."""

    @requires("purge")
    def test_purge_removes_exactly_the_sessions_closed_before_the_cutoff(self, make_manager: MakeManager,
                                                                         clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        old, keep = _closed_and_live(mgr, clock)
        before = {sid: mgr.history(sid) for sid in [*old.values(), *keep.values()]}
        unknown = uuid4()
        ticks: list[int] = []
        result = mgr.purge(closed_before=clock.now() - timedelta(days=1), batch_size=2, progress=ticks.append)
        assert result.sessions == len(old)
        assert result.archive_files == 0
        assert result.skipped == 0
        assert result.events == sum(len(before[sid]) for sid in old.values())
        assert sum(ticks) == len(old)
        assert len(ticks) == 2
        for sid in old.values():
            assert _gone(mgr, sid)
            assert _outcome(partial(mgr.get, sid)) == _outcome(partial(mgr.get, unknown))
            assert _outcome(partial(mgr.history, sid)) == _outcome(partial(mgr.history, unknown))
            assert mgr.get_active(sid) is None
        for sid in keep.values():
            assert mgr.history(sid) == before[sid]
        listed = {s.id for s in mgr.list(limit=1000)}
        assert listed == set(keep.values())
        assert mgr.count() == len(keep)
        assert all(e.session_id in keep.values() for e in mgr.events(after=0, limit=1000))
        assert mgr.verify() == []
        assert mgr.rebuild() == len(keep)
        assert mgr.verify() == []
        # Nothing left to purge before that cutoff: a second run changes nothing.
        again = mgr.purge(closed_before=clock.now() - timedelta(days=1))
        assert (again.sessions, again.events) == (0, 0)

    @requires("purge")
    def test_purge_archives_each_whole_history_first_and_the_archive_reads_back(self, make_manager: MakeManager,
                                                                                clock: ManualClock,
                                                                                tmp_path: Path) -> None:
        mgr = make_manager(clock=clock)
        old, _keep = _closed_and_live(mgr, clock)
        histories = {sid: mgr.history(sid) for sid in old.values()}
        root = tmp_path / "archive" / "nested"
        result = mgr.purge(closed_before=clock.now() - timedelta(days=1), archive=root)
        assert result.sessions == len(old)
        assert result.archive_files == len(old)
        archived = {h[0].session_id: h for h in read_archive(root)}
        assert archived == histories  # equal events (a stored event's position is not part of it)
        assert (root / "users" / "u1" / "sessions" / f"{old['completed']}.jsonl").is_file()
        assert (root / "no-user" / "sessions" / f"{old['deleted_live']}.jsonl").is_file()
        # The archive can be put back.
        assert restore_archive(mgr.store, root) == len(old)
        for sid, history in histories.items():
            assert mgr.history(sid) == history
        assert mgr.verify() == []

    def test_bad_arguments_raise_invalid_input_and_change_nothing(self, make_manager: MakeManager, clock: ManualClock,
                                                                  tmp_path: Path) -> None:
        mgr = make_manager(clock=clock)
        old, keep = _closed_and_live(mgr, clock)
        before = {sid: mgr.history(sid) for sid in [*old.values(), *keep.values()]}
        cutoff = clock.now() - timedelta(days=1)
        a_file = tmp_path / "a-file"
        a_file.write_text("x")
        missing = tmp_path / "not-created"
        bad: list[dict[str, Any]] = [
            {"closed_before": cutoff.replace(tzinfo=None)},
            {"closed_before": cutoff.isoformat()},
            {"closed_before": None},
            {"closed_before": cutoff, "batch_size": 0},
            {"closed_before": cutoff, "batch_size": -3},
            {"closed_before": cutoff, "batch_size": 10_001},
            {"closed_before": cutoff, "batch_size": True},
            {"closed_before": cutoff, "batch_size": "5"},
            {"closed_before": cutoff, "archive": a_file},
            {"closed_before": cutoff, "archive": 42},
            {"closed_before": cutoff, "progress": "tick"},
            {"closed_before": cutoff.replace(tzinfo=None), "archive": missing},
            {"closed_before": cutoff, "archive": missing, "batch_size": 0},
        ]
        for kwargs in bad:
            with pytest.raises(InvalidInput):
                mgr.purge(**kwargs)
        assert not missing.exists()
        for sid, history in before.items():
            assert mgr.history(sid) == history
        assert mgr.verify() == []

    @requires("purge")
    def test_a_session_changed_meanwhile_is_skipped_whole(self, make_manager: MakeManager, clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        old, keep = _closed_and_live(mgr, clock)
        victim = old["failed"]
        archive = _ChangingArchive(mgr, victim)
        result = mgr.purge(closed_before=clock.now() - timedelta(days=1), archive=archive)
        assert victim in archive.seen
        assert result.sessions == len(old) - 1
        assert result.skipped == 1
        history = mgr.history(victim)
        assert [e.event for e in history] == ["created", "failed", "deleted"]
        assert [e.version for e in history] == [1, 2, 3]
        assert mgr.verify() == []
        # Once it is old enough (and no longer holds the newest event), a later run purges it.
        clock.advance(timedelta(days=3))
        mgr.create(performer_id="later")
        later = mgr.purge(closed_before=clock.now() - timedelta(days=1))
        assert later.sessions == 2
        assert _gone(mgr, victim)
        assert _gone(mgr, keep["recent_failed"])
        assert mgr.verify() == []

    @requires("purge")
    def test_feed_positions_are_not_reused_after_purging_the_newest_events(self, make_manager: MakeManager,
                                                                           clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        ids = []
        for _ in range(3):
            s = mgr.create(performer_id="p")
            mgr.start(s.id, performer_id="p")
            ids.append(mgr.complete(s.id, performer_id="p").id)
        seen = [e.position for e in mgr.events(after=0)]
        last = mgr.last_position()
        assert last == max(seen)  # type: ignore[type-var]
        mgr.save_consumer_position("billing", last)
        clock.advance(timedelta(days=2))
        result = mgr.purge(closed_before=clock.now())
        # Every session is closed and old, but the one holding the newest event stays until a newer one exists.
        assert (result.sessions, result.skipped) == (2, 1)
        assert not _gone(mgr, ids[2])
        assert _gone(mgr, ids[0])
        assert mgr.last_position() == last
        fresh = mgr.create(performer_id="p", ttl=timedelta(days=30))
        new_events = mgr.events(after=last)
        assert [e.session_id for e in new_events] == [fresh.id]
        first_new = new_events[0].position
        assert first_new is not None
        assert first_new > last
        assert mgr.consumer_position("billing") == last
        clock.advance(timedelta(days=2))
        assert mgr.purge(closed_before=clock.now()).sessions == 1  # the former holder; the live one stays
        assert _gone(mgr, ids[2])
        assert mgr.last_position() >= first_new
        mgr.start(fresh.id, performer_id="p")
        positions = positions_of(mgr.events(after=0))
        assert positions == sorted(positions)
        assert min(positions) > last
        assert mgr.verify() == []

    @requires("purge")
    def test_a_session_closed_just_before_the_cutoff_is_purged(self, make_manager: MakeManager,
                                                               clock: ManualClock) -> None:
        mgr = make_manager(clock=clock)
        s = mgr.create(performer_id="p")
        mgr.start(s.id, performer_id="p")
        done = mgr.complete(s.id, performer_id="p")
        mgr.create(performer_id="p")
        cutoff: datetime = clock.now() + timedelta(milliseconds=1)
        assert mgr.purge(closed_before=cutoff).sessions == 1
        assert _gone(mgr, done.id)
