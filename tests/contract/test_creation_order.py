"""Sessions created one after another by 2 threads and 2 processes on one database list in that order (the
rest of the creation-order contract is in ``sessionflow.testing.contract.ordering``, collected by
``test_suite.py``)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from sessionflow import SessionManager
from sessionflow.testing import ManualClock
from sessionflow.testing.contract.ordering import assert_listed_in_order
from tests.support.backends import BACKENDS, open_store

MakeManager = Callable[..., SessionManager]

#: The instant every session of the many-writers test is created at: one millisecond for all of them.
INSTANT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------- many writers, one after another


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The four stores only: on the asyncio facade a store's order is the same store's (the facade adds none)."""
    return str(request.param)


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
            processes.append(process)
            workers.append((process_orders, process_answers))
        for _orders, process_answers in workers[len(threads):]:  # the two processes start side by side
            assert process_answers.get(timeout=120) == "ready"
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
