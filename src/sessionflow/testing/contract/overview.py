"""An operator's overview: ``deadlines_within`` (the sessions of a window of deadlines, soonest first),
``count_by_status`` (the counts per status under a list's filters), ``events(event=...)`` (the feed by event name)
and ``diagram`` (a session drawn with its state and path)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sessionflow import InvalidInput, Session, SessionManager, SessionNotFound
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager


def ids(sessions: list[Session]) -> list[Any]:
    return [s.id for s in sessions]


class TestOverview(ContractSuite):
    """deadlines_within, count_by_status, events by name, diagram."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(hours=1))

    @pytest.fixture
    def timed(self, mgr: SessionManager) -> dict[str, Session]:
        """Sessions whose deadlines fall 5, 10, 20, 30 and 120 minutes from now, of two users and states, and
        closed or deleted ones (no deadline)."""
        made = {
            "a30": mgr.create(performer_id="p", user_id="alice", ttl=timedelta(minutes=30)),
            "b5": mgr.create(performer_id="p", user_id="bob", ttl=timedelta(minutes=5)),
            "a10": mgr.create(performer_id="p", user_id="alice", ttl=timedelta(minutes=10)),
            "b120": mgr.create(performer_id="p", user_id="bob", ttl=timedelta(minutes=120)),
            "a20": mgr.create(performer_id="p", user_id="alice", ttl=timedelta(minutes=20)),
            "failed": mgr.create(performer_id="p", user_id="alice", ttl=timedelta(minutes=1)),
            "deleted": mgr.create(performer_id="p", user_id="alice", ttl=timedelta(minutes=2)),
        }
        mgr.start(made["a10"].id, performer_id="p")
        mgr.fail(made["failed"].id, reason="broken", performer_id="p")
        mgr.delete(made["deleted"].id, performer_id="p")
        return {name: mgr.get(s.id) if name != "deleted" else s for name, s in made.items()}

    # ------------------------------------------------------------------ deadlines_within

    def test_deadlines_within_a_window_soonest_first(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        assert ids(mgr.deadlines_within(timedelta(hours=1))) == ids(
            [timed["b5"], timed["a10"], timed["a20"], timed["a30"]])
        assert ids(mgr.deadlines_within(timedelta(hours=3))) == ids(
            [timed["b5"], timed["a10"], timed["a20"], timed["a30"], timed["b120"]])
        assert ids(mgr.deadlines_within(timedelta(minutes=4))) == []

    def test_deadlines_within_includes_the_window_end(self, mgr: SessionManager,
                                                       timed: dict[str, Session]) -> None:
        assert ids(mgr.deadlines_within(timedelta(minutes=10))) == ids([timed["b5"], timed["a10"]])

    def test_deadlines_within_of_one_user_and_limited(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        assert ids(mgr.deadlines_within(timedelta(hours=1), user_id="alice")) == ids(
            [timed["a10"], timed["a20"], timed["a30"]])
        assert ids(mgr.deadlines_within(timedelta(hours=3), user_id="bob", limit=1)) == ids([timed["b5"]])
        assert ids(mgr.deadlines_within(timedelta(hours=3), limit=2)) == ids([timed["b5"], timed["a10"]])
        assert mgr.deadlines_within(timedelta(hours=3), user_id="nobody") == []

    def test_deadlines_within_follow_the_clock_and_moved_deadlines(
            self, mgr: SessionManager, timed: dict[str, Session], clock: ManualClock) -> None:
        clock.advance(timedelta(minutes=7))  # b5 is overdue now: being expired, not listed
        assert ids(mgr.deadlines_within(timedelta(minutes=5))) == ids([timed["a10"]])
        mgr.touch(timed["a10"].id, performer_id="p")  # its deadline moves to 10 minutes from now
        assert ids(mgr.deadlines_within(timedelta(minutes=5))) == []
        assert ids(mgr.deadlines_within(timedelta(minutes=14))) == ids([timed["a10"], timed["a20"]])

    def test_deadlines_within_refuses_bad_arguments(self, mgr: SessionManager) -> None:
        bad: Any
        for bad in (timedelta(0), timedelta(seconds=-1), 60, None, "1h", timedelta(days=40_000)):
            with pytest.raises(InvalidInput) as info:
                mgr.deadlines_within(bad)
            assert info.value.field == "window"
        for bad in (0, 1001, True, "5"):
            with pytest.raises(InvalidInput) as info:
                mgr.deadlines_within(timedelta(hours=1), limit=bad)
            assert info.value.field == "limit"

    # ------------------------------------------------------------------ count_by_status

    def test_count_by_status_under_the_list_filters(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        assert mgr.count_by_status() == {"failed": 1, "in_progress": 1, "pending": 4}
        assert mgr.count_by_status(user_id="alice") == {"failed": 1, "in_progress": 1, "pending": 2}
        assert mgr.count_by_status(user_id="bob") == {"pending": 2}
        assert mgr.count_by_status(status=["failed", "in_progress"]) == {"failed": 1, "in_progress": 1}
        assert mgr.count_by_status(status="pending", user_id="alice") == {"pending": 2}
        assert mgr.count_by_status(lifecycle="session", status="failed") == {"failed": 1}
        assert mgr.count_by_status(user_id="nobody") == {}
        assert mgr.count_by_status(status=[]) == {}

    def test_count_by_status_matches_the_list(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        for filters in ({}, {"user_id": "alice"}, {"status": ["pending", "failed"]},
                        {"created_after": timed["a10"].created_at}, {"created_before": timed["a10"].created_at},
                        {"workspace_id": "nowhere"}, {"module_name": "nothing"}):
            listed: dict[str, int] = {}
            for session in mgr.list(limit=1000, **filters):
                listed[session.status] = listed.get(session.status, 0) + 1
            assert mgr.count_by_status(**filters) == dict(sorted(listed.items())), filters

    def test_count_by_status_expires_the_overdue_first(self, mgr: SessionManager, timed: dict[str, Session],
                                                       clock: ManualClock) -> None:
        clock.advance(timedelta(minutes=15))
        assert mgr.count_by_status() == {"expired": 2, "failed": 1, "pending": 3}
        assert mgr.count_by_status(user_id="bob") == {"expired": 1, "pending": 1}

    def test_count_by_status_refuses_bad_filters(self, mgr: SessionManager) -> None:
        with pytest.raises(InvalidInput) as info:
            mgr.count_by_status(status="no-such-status")
        assert info.value.field == "status"
        with pytest.raises(InvalidInput) as info:
            mgr.count_by_status(user_id=5)  # type: ignore[arg-type]
        assert info.value.field == "user_id"

    # ------------------------------------------------------------------ the feed by event name

    def test_events_by_name(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        failed = mgr.events(event="failed")
        assert [(e.session_id, str(e.event)) for e in failed] == [(timed["failed"].id, "failed")]
        both = mgr.events(event=["started", "failed"])
        assert [str(e.event) for e in both] == ["started", "failed"]
        assert [e.position for e in both] == sorted(e.position or 0 for e in both)
        assert len(mgr.events(event="created")) == 7
        assert mgr.events(event="completed") == []

    def test_events_by_name_after_a_position_limited_and_of_one_user(
            self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        created = mgr.events(event="created")
        second = created[1].position or 0
        assert [e.session_id for e in mgr.events(event="created", after=second)] == [
            e.session_id for e in created[2:]]
        assert [e.session_id for e in mgr.events(event="created", limit=2)] == [e.session_id for e in created[:2]]
        bobs = mgr.events(event="created", user_id="bob")
        assert [e.session_id for e in bobs] == [timed["b5"].id, timed["b120"].id]
        assert mgr.events(event="failed", user_id="bob") == []
        assert [e.session_id for e in mgr.events(user_id="bob")] == [timed["b5"].id, timed["b120"].id]

    def test_events_by_name_refuse_bad_names(self, mgr: SessionManager) -> None:
        bad: Any
        for bad in ("", [], 5, ["ok", ""]):
            with pytest.raises(InvalidInput) as info:
                mgr.events(event=bad)
            assert info.value.field == "event"

    # ------------------------------------------------------------------ a session's diagram

    def test_diagram_marks_the_state_and_the_path(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        session = timed["a10"]
        mgr.complete(session.id, performer_id="p")
        drawn = mgr.diagram(session.id, format="text")
        assert drawn.format == "text"
        assert drawn.marks.current == "completed"
        assert [(source, target) for _, source, target in drawn.marks.path] == [
            ("pending", "in_progress"), ("in_progress", "completed")]
        assert "* Completed" in drawn.content
        assert "+ Pending" in drawn.content
        dot = mgr.diagram(session.id, format="dot")
        assert dot.format == "dot"
        assert 'class="current"' in dot.content
        assert 'class="taken"' in dot.content
        svg = mgr.diagram(session.id)
        assert svg.format in ("svg", "text")
        assert ("<svg" in svg.content) == (svg.format == "svg")

    def test_diagram_of_a_new_session_and_of_none(self, mgr: SessionManager, timed: dict[str, Session]) -> None:
        drawn = mgr.diagram(timed["b5"].id, format="text")
        assert drawn.marks.current == "pending"
        assert drawn.marks.path == ()
        with pytest.raises(SessionNotFound):
            mgr.diagram("00000000-0000-4000-8000-000000000000", format="text")
        with pytest.raises(InvalidInput) as info:
            mgr.diagram(timed["b5"].id, format="pdf")
        assert info.value.field == "format"
