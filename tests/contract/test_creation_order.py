"""Lists in creation order: sessions created one after another list in that order — within one millisecond,
from several threads and processes — oldest first and newest first, through offset and cursor pages; cursors
of either direction, of the format issued before, and of a session purged since."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import queue
import struct
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from sessionflow import InvalidInput, Session, SessionManager
from sessionflow.testing import ManualClock
from tests.support.backends import open_store

MakeManager = Callable[..., SessionManager]

#: The instant every session of the many-writers test is created at: one millisecond for all of them.
INSTANT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def ids(sessions: list[Session]) -> list[UUID]:
    return [s.id for s in sessions]


@pytest.fixture
def mgr(make_manager: MakeManager, clock: ManualClock) -> SessionManager:
    return make_manager(clock=clock, default_ttl=timedelta(hours=1))


def walk(mgr: SessionManager, limit: int, **filters: Any) -> list[Session]:
    """Every session, page after page by cursor."""
    found: list[Session] = []
    cursor = None
    while True:
        page = mgr.page(cursor=cursor, limit=limit, **filters)
        found.extend(page.items)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


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


def test_sessions_of_one_millisecond_list_in_creation_order(mgr: SessionManager) -> None:
    made = [mgr.create(performer_id="p", user_id=f"u{i % 2}") for i in range(12)]  # the clock does not move
    assert len({s.created_at for s in made}) == 1
    assert_listed_in_order(mgr, ids(made), 5)
    assert_listed_in_order(mgr, ids(made[1::2]), 2, user_id="u1")
    assert_listed_in_order(mgr, ids(made[::2]), 4, status="pending", user_id="u0")
    mgr.start(made[3].id, performer_id="p")  # a write after creation never moves a session in the list
    mgr.update(made[0].id, metadata={"x": 1}, performer_id="p")
    assert_listed_in_order(mgr, ids(made), 3)
    assert_listed_in_order(mgr, ids(made), 3, status=["pending", "in_progress"])


def test_newest_first_with_every_filter(mgr: SessionManager, clock: ManualClock) -> None:
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


def test_a_cursor_pages_on_only_in_its_own_direction(mgr: SessionManager) -> None:
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


def _format_1_cursor(session: Session) -> str:
    """A cursor as the lists issued before they were in feed order: creation time and id, checked."""
    millis = int((session.created_at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
    body = struct.pack(">Bq16s", 1, millis, session.id.bytes)
    check = hashlib.blake2b(body, digest_size=6, key=b"sessionflow.list.cursor").digest()
    return base64.urlsafe_b64encode(body + check).decode("ascii").rstrip("=")


def test_a_cursor_issued_before_keeps_working(mgr: SessionManager, clock: ManualClock) -> None:
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


def test_a_cursor_whose_session_was_purged_says_to_restart_paging(mgr: SessionManager,
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


# ---------------------------------------------------------------------- many writers, one after another


def _process_writer(backend: str, url: str, orders: Any, answers: Any) -> None:
    """A process creating a session each time it is told to, and answering with its id."""
    with SessionManager(open_store(backend, url), clock=ManualClock(INSTANT)) as manager:
        answers.put("ready")
        while (number := orders.get()) is not None:
            answers.put(str(manager.create(performer_id="p", user_id="writer", metadata={"n": number}).id))


def _thread_writer(manager: SessionManager, orders: queue.Queue[int | None], answers: queue.Queue[str]) -> None:
    while (number := orders.get()) is not None:
        answers.put(str(manager.create(performer_id="p", user_id="writer", metadata={"n": number}).id))


def test_sessions_created_one_after_another_by_threads_and_processes_list_in_that_order(
        backend: str, database_url: str | None, make_manager: MakeManager) -> None:
    """1,000 sessions, all in one millisecond, created in turn by 2 threads and (on a shared database) 2
    processes, each creation returned before the next began: listed back in that order."""
    if backend.endswith("-async"):
        pytest.skip("the stores' order is that of the synchronous facade's (the same store)")
    main = make_manager(clock=ManualClock(INSTANT))
    workers: list[tuple[Any, Any]] = []
    threads = []
    for _ in range(2):
        manager = make_manager(clock=ManualClock(INSTANT), store_of=main) if database_url is None else (
            make_manager(clock=ManualClock(INSTANT)))
        orders: queue.Queue[int | None] = queue.Queue()
        answers: queue.Queue[str] = queue.Queue()
        thread = threading.Thread(target=_thread_writer, args=(manager, orders, answers), daemon=True)
        thread.start()
        threads.append(thread)
        workers.append((orders, answers))
    processes = []
    if database_url is not None:
        context = multiprocessing.get_context("spawn")
        for _ in range(2):
            process_orders, process_answers = context.Queue(), context.Queue()
            process = context.Process(target=_process_writer,
                                      args=(backend, database_url, process_orders, process_answers), daemon=True)
            process.start()
            assert process_answers.get(timeout=120) == "ready"
            processes.append(process)
            workers.append((process_orders, process_answers))
    try:
        made: list[UUID] = []
        for number in range(1000):
            orders_, answers_ = workers[number % len(workers)]
            orders_.put(number)
            made.append(UUID(answers_.get(timeout=60)))
    finally:
        for orders_, _answers in workers:
            orders_.put(None)
        for thread in threads:
            thread.join(timeout=30)
        for process in processes:
            process.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    assert len(set(made)) == 1000
    assert_listed_in_order(main, made, 100)
    assert_listed_in_order(main, made, 70, user_id="writer", status="pending")
    assert [s.metadata["n"] for s in main.list(limit=1000)] == list(range(1000))
