"""Creation order: sessions created one after another list in that order — also within one millisecond — oldest
first and newest first, through offset and cursor pages; cursors of either direction, of the format issued
before lists were in creation order, and of a session purged since."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from sessionflow import InvalidInput, Session, SessionManager
from sessionflow.testing import ManualClock
from sessionflow.testing.contract._support import ContractSuite, MakeManager, requires
from sessionflow.testing.contract.listing import ids
from sessionflow.testing.contract.listing import walk as pages

__all__ = ["TestCreationOrder", "assert_listed_in_order"]


def walk(mgr: SessionManager, limit: int, **filters: Any) -> list[Session]:
    """Every session, page after page by cursor (each page but the last full)."""
    return [session for page in pages(mgr, limit, **filters) for session in page]


def offsets(mgr: SessionManager, limit: int, **filters: Any) -> list[Session]:
    """Every session, page after page by offset."""
    found: list[Session] = []
    while True:
        page = mgr.list(limit=limit, offset=len(found), **filters)
        found.extend(page)
        if len(page) < limit:
            return found


def assert_listed_in_order(mgr: SessionManager, made: list[UUID], limit: int, **filters: Any) -> None:
    """``made`` (in creation order) is what every way of listing returns: oldest first and newest first, one
    page, by offset, by cursor."""
    assert ids(mgr.list(limit=1000, **filters)) == made
    assert ids(mgr.list(limit=1000, newest_first=True, **filters)) == made[::-1]
    for newest_first in (False, True):
        expected = made[::-1] if newest_first else made
        assert ids(offsets(mgr, limit, newest_first=newest_first, **filters)) == expected, newest_first
        assert ids(walk(mgr, limit, newest_first=newest_first, **filters)) == expected, newest_first


def _format_1_cursor(session: Session) -> str:
    """A cursor as the lists issued before they were in feed order: creation time and id, checked."""
    millis = int((session.created_at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
    body = struct.pack(">Bq16s", 1, millis, session.id.bytes)
    check = hashlib.blake2b(body, digest_size=6, key=b"sessionflow.list.cursor").digest()
    return base64.urlsafe_b64encode(body + check).decode("ascii").rstrip("=")


class TestCreationOrder(ContractSuite):
    """Lists in creation order (the order the store committed the sessions' ``created`` events in)."""

    @pytest.fixture
    def mgr(self, make_manager: MakeManager, clock: ManualClock) -> SessionManager:
        return make_manager(clock=clock, default_ttl=timedelta(hours=1))

    def test_sessions_of_one_millisecond_list_in_creation_order(self, mgr: SessionManager) -> None:
        made = [mgr.create(performer_id="p", user_id=f"u{i % 2}") for i in range(12)]  # the clock does not move
        assert len({s.created_at for s in made}) == 1
        assert_listed_in_order(mgr, ids(made), 5)
        assert_listed_in_order(mgr, ids(made[1::2]), 2, user_id="u1")
        assert_listed_in_order(mgr, ids(made[::2]), 4, status="pending", user_id="u0")
        mgr.start(made[3].id, performer_id="p")  # a write after creation never moves a session in the list
        mgr.update(made[0].id, metadata={"x": 1}, performer_id="p")
        assert_listed_in_order(mgr, ids(made), 3)
        assert_listed_in_order(mgr, ids(made), 3, status=["pending", "in_progress"])


    def test_newest_first_with_every_filter(self, mgr: SessionManager, clock: ManualClock) -> None:
        made = []
        for i in range(8):
            made.append(mgr.create(performer_id="p", user_id=f"u{i % 2}", workspace_id="w"))
            if i % 3 == 0:
                clock.advance(timedelta(seconds=1))
        mgr.start(made[5].id, performer_id="p")
        after = made[2].created_at
        expected = [s.id for s in made if s.created_at >= after and s.user_id == "u1"]
        listed = mgr.list(newest_first=True, created_after=after, user_id="u1", workspace_id="w", lifecycle="session",
                          status=["pending", "in_progress"])
        assert ids(listed) == expected[::-1]
        assert ids(mgr.list(newest_first=True, limit=2, offset=1)) == ids(made[::-1][1:3])


    def test_a_cursor_pages_on_only_in_its_own_direction(self, mgr: SessionManager) -> None:
        made = [mgr.create(performer_id="p") for _ in range(5)]
        forwards = mgr.page(limit=2).next_cursor
        backwards = mgr.page(limit=2, newest_first=True).next_cursor
        assert forwards is not None
        assert backwards is not None
        assert ids(mgr.list(cursor=forwards)) == ids(made[2:])
        assert ids(mgr.list(cursor=backwards, newest_first=True)) == ids(made[2::-1])
        for cursor, newest_first in ((forwards, True), (backwards, False)):
            for method in (mgr.list, mgr.page):
                with pytest.raises(InvalidInput) as info:
                    method(cursor=cursor, newest_first=newest_first)
                assert info.value.field == "cursor"
                assert "restart paging" in info.value.message


    def test_a_cursor_issued_before_keeps_working(self, mgr: SessionManager, clock: ManualClock) -> None:
        made = []
        for _ in range(4):
            made.append(mgr.create(performer_id="p"))
            clock.advance(timedelta(seconds=1))
        old = _format_1_cursor(made[1])
        assert ids(mgr.list(cursor=old)) == ids(made[2:])
        assert ids(mgr.page(cursor=old, limit=1).items) == [made[2].id]
        with pytest.raises(InvalidInput) as info:  # issued for a list oldest first, the only order there was
            mgr.list(cursor=old, newest_first=True)
        assert info.value.field == "cursor"


    @requires("purge")
    def test_a_cursor_whose_session_was_purged_says_to_restart_paging(self, mgr: SessionManager,
                                                                      clock: ManualClock) -> None:
        made = [mgr.create(performer_id="p") for _ in range(4)]
        mgr.fail(made[1].id, reason="r", performer_id="p")
        cursor = mgr.page(limit=2).next_cursor  # after made[1]
        backwards = mgr.page(limit=3, newest_first=True).next_cursor  # after made[1], newest first
        assert ids(mgr.list(cursor=cursor)) == ids(made[2:])
        assert ids(mgr.list(cursor=backwards, newest_first=True)) == [made[0].id]
        clock.advance(timedelta(days=2))
        mgr.create(performer_id="p")  # (the feed's newest event is never purged)
        assert mgr.purge(closed_before=clock.now() - timedelta(days=1)).sessions == 1
        for given, newest_first in ((cursor, False), (backwards, True)):
            for method in (mgr.list, mgr.page):
                with pytest.raises(InvalidInput) as info:
                    method(cursor=given, newest_first=newest_first)
                assert info.value.field == "cursor"
                assert "restart paging" in info.value.message
