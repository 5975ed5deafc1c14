"""The global event feed and its consumers, on every store: positions in commit order, pages, consumers that
store their position only after the handler returned, and bad input refused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from sessionflow import ConcurrencyConflict, InvalidInput, SessionEvent, SessionManager
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager, positions_of


def _lifecycles(mgr: SessionManager, n: int) -> None:
    for i in range(n):
        s = mgr.create(performer_id=f"u{i}", user_id=f"u{i}", file_paths=["a.py"])
        mgr.start(s.id, performer_id=f"u{i}")
        mgr.record_file(s.id, "a.py", performer_id=f"u{i}")
        mgr.complete(s.id, performer_id=f"u{i}")


class TestFeed(ContractSuite):
    """The event feed and its consumers."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(minutes=10))

    def test_every_event_has_a_position_increasing_in_commit_order(self, mgr: SessionManager) -> None:
        assert mgr.events() == []
        assert mgr.last_position() == 0
        _lifecycles(mgr, 3)
        feed = mgr.events()
        assert len(feed) == 12
        positions = positions_of(feed)
        assert positions == sorted(positions)
        assert len(set(positions)) == 12
        assert mgr.last_position() == positions[-1]
        # One writer: the feed is the writes in the order they were made.
        assert [(e.session_id, e.version) for e in feed] == [
            (e.session_id, e.version) for s in dict.fromkeys(e.session_id for e in feed) for e in mgr.history(s)]
        # history() carries the same positions.
        by_record = {e.record_id: e.position for e in feed}
        for session_id in {e.session_id for e in feed}:
            assert all(e.position == by_record[e.record_id] for e in mgr.history(session_id))

    def test_pages_after_a_position(self, mgr: SessionManager) -> None:
        _lifecycles(mgr, 5)
        every = mgr.events(limit=10_000)
        pages: list[SessionEvent] = []
        after = 0
        while page := mgr.events(after=after, limit=3):
            assert len(page) <= 3
            pages += page
            after = page[-1].position or 0
        assert [e.record_id for e in pages] == [e.record_id for e in every]
        assert mgr.events(after=every[-1].position or 0) == []
        assert mgr.events(after=every[4].position or 0, limit=2) == every[5:7]

    def test_expiries_and_deletions_are_in_the_feed(self, mgr: SessionManager, clock: ManualClock) -> None:
        a = mgr.create(performer_id="u", ttl=timedelta(seconds=5))
        b = mgr.create(performer_id="u")
        mgr.delete(b.id, performer_id="u")
        clock.advance(timedelta(seconds=6))
        assert mgr.expire_sessions() == 1
        kinds = [(e.session_id, str(e.event)) for e in mgr.events()]
        assert kinds == [(a.id, "created"), (b.id, "created"), (b.id, "deleted"), (a.id, "expired")]

    def test_a_refused_write_takes_no_place_in_the_feed(self, mgr: SessionManager) -> None:
        s = mgr.create(performer_id="u")
        mgr.start(s.id, performer_id="u")
        before = mgr.events()
        with pytest.raises(ConcurrencyConflict):
            mgr.touch(s.id, performer_id="u", expected_version=1)
        assert mgr.events() == before
        mgr.touch(s.id, performer_id="u")
        assert [str(e.event) for e in mgr.events(after=before[-1].position or 0)] == ["touched"]

    def test_a_consumer_handles_each_event_once_and_resumes_after_its_position(self, mgr: SessionManager) -> None:
        _lifecycles(mgr, 2)
        seen: list[SessionEvent] = []
        assert mgr.consumer_position("billing") == 0
        assert mgr.consume("billing", seen.append, follow=False, batch_size=3) == 8
        assert [e.record_id for e in seen] == [e.record_id for e in mgr.events()]
        assert mgr.consumer_position("billing") == seen[-1].position
        assert mgr.consume("billing", seen.append, follow=False) == 0  # nothing new
        _lifecycles(mgr, 1)
        assert mgr.consume("billing", seen.append, follow=False) == 4
        assert len(seen) == 12
        assert len({e.record_id for e in seen}) == 12
        # Another name has a position of its own.
        other: list[SessionEvent] = []
        assert mgr.consume("audit", other.append, follow=False, max_events=5) == 5
        assert mgr.consumer_position("audit") == other[-1].position
        assert mgr.consumer_position("billing") == seen[-1].position

    def test_a_failing_handler_keeps_the_events_before_it_and_sees_its_event_again(self, mgr: SessionManager) -> None:
        _lifecycles(mgr, 1)
        feed = mgr.events()
        handled: list[int] = []

        def handler(event: SessionEvent) -> None:
            if event.version == 3 and not handled.count(-1):
                handled.append(-1)
                raise RuntimeError("downstream unavailable")
            handled.append(event.version)

        with pytest.raises(RuntimeError, match="downstream unavailable"):
            mgr.consume("mail", handler, follow=False, batch_size=100)
        assert mgr.consumer_position("mail") == feed[1].position  # versions 1 and 2 were handled
        assert mgr.consume("mail", handler, follow=False) == 2
        assert handled == [1, 2, -1, 3, 4]

    def test_the_stored_position_never_moves_back(self, mgr: SessionManager) -> None:
        mgr.save_consumer_position("c", 7)
        mgr.save_consumer_position("c", 3)
        assert mgr.consumer_position("c") == 7
        mgr.save_consumer_position("c", 9)
        assert mgr.consumer_position("c") == 9

    def test_a_following_consumer_sees_later_writes_and_stops_when_asked(self, mgr: SessionManager) -> None:
        stop = threading.Event()
        seen: list[SessionEvent] = []

        def handler(event: SessionEvent) -> None:
            seen.append(event)
            if len(seen) == 4:
                stop.set()

        worker = threading.Thread(target=mgr.consume, args=("follower", handler),
                                  kwargs={"stop": stop, "poll_interval": 0.02})
        worker.start()
        try:
            _lifecycles(mgr, 1)
            worker.join(timeout=10)
            assert not worker.is_alive()
        finally:
            stop.set()
            worker.join(timeout=10)
        assert [e.version for e in seen] == [1, 2, 3, 4]
        assert mgr.consumer_position("follower") == seen[-1].position

    @pytest.mark.parametrize(("call", "field"), [
        (lambda m: m.events(after=-1), "after"),
        (lambda m: m.events(after="3"), "after"),
        (lambda m: m.events(limit=0), "limit"),
        (lambda m: m.events(limit=10_001), "limit"),
        (lambda m: m.consumer_position(""), "name"),
        (lambda m: m.consumer_position("bad\nname"), "name"),
        (lambda m: m.save_consumer_position("c", -1), "position"),
        (lambda m: m.consume("c", "not callable", follow=False), "handler"),
        (lambda m: m.consume("c", print, batch_size=0, follow=False), "batch_size"),
        (lambda m: m.consume("c", print, poll_interval=0), "poll_interval"),
        (lambda m: m.consume("c", print, max_events=0), "max_events"),
        (lambda m: m.consume("c", print, stop=True), "stop"),
    ])
    def test_bad_input_is_refused_and_changes_nothing(self, mgr: SessionManager,
                                                      call: Callable[[SessionManager], object], field: str) -> None:
        _lifecycles(mgr, 1)
        with pytest.raises(InvalidInput) as raised:
            call(mgr)
        assert raised.value.field == field
        assert mgr.consumer_position("c") == 0
