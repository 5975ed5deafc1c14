"""Feed positions follow commit order, also when transactions overlap.

On PostgreSQL a sequence alone would not do: two transactions can take positions 7 and 8 and commit 8 first,
and a reader that has passed 8 would never see 7. The tests hold one transaction open after it inserted an
event, and check that a concurrent write commits after it, at a higher position; and they race writers
against a reader that must never miss an event.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from sessionflow import SessionEvent, SessionManager
from tests.support.backends import reset_postgres

pytestmark = pytest.mark.postgres


def test_a_later_transaction_commits_after_an_open_one_at_a_higher_position(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    with SessionManager.open(postgres_url) as mgr:
        first = mgr.create(performer_id="u")
        engine = create_engine(postgres_url)
        try:
            with engine.connect() as held:
                tx = held.begin()
                # An append left open: its event row is inserted (and has taken its position), not committed.
                held.execute(text("UPDATE sessions SET version = 2 WHERE id = :id"), {"id": first.id})
                held.execute(text(
                    "INSERT INTO session_events (record_id, session_id, version, event, source_state, "
                    "target_state, performer_id, timestamp, payload) VALUES (:r, :s, 2, 'touched', 'pending', "
                    "'pending', 'u', 0, '{}')"), {"r": uuid.uuid4(), "s": first.id})
                open_position = held.execute(text(
                    "SELECT position FROM session_events WHERE session_id = :s AND version = 2"),
                    {"s": first.id}).scalar_one()
                done = threading.Event()
                created: list[uuid.UUID] = []

                def write() -> None:
                    created.append(mgr.create(performer_id="v").id)
                    done.set()

                writer = threading.Thread(target=write)
                writer.start()
                # The concurrent write waits for the open transaction: nothing at a higher position is visible
                # while a lower one may still commit.
                assert not done.wait(0.5)
                seen = mgr.events()
                assert [e.version for e in seen] == [1]
                tx.commit()
            writer.join(10)
            assert done.is_set()
        finally:
            engine.dispose()
        feed = mgr.events()
        assert [(e.session_id, e.version) for e in feed] == [(first.id, 1), (first.id, 2), (created[0], 1)]
        assert feed[1].position == open_position
        assert feed[2].position is not None
        assert open_position is not None
        assert feed[2].position > open_position


@pytest.mark.parametrize("sql_backend", ["sqlite", "postgres"], indirect=True)
def test_racing_writers_never_make_a_reader_miss_an_event(sql_url: str) -> None:
    with SessionManager.open(sql_url) as mgr:
        stop = threading.Event()
        seen: list[SessionEvent] = []

        def read() -> None:
            after = 0
            while True:
                finished = stop.is_set()
                page = mgr.events(after=after, limit=500)
                for event in page:
                    assert event.position is not None
                    assert event.position > after
                    after = event.position
                seen.extend(page)
                if finished and not page:
                    return

        def write(tag: str) -> None:
            for i in range(40):
                s = mgr.create(performer_id=f"{tag}{i}")
                mgr.start(s.id, performer_id=f"{tag}{i}")
                mgr.complete(s.id, performer_id=f"{tag}{i}")

        reader = threading.Thread(target=read)
        writers = [threading.Thread(target=write, args=(f"w{n}-",)) for n in range(6)]
        reader.start()
        for w in writers:
            w.start()
        for w in writers:
            w.join(60)
        time.sleep(0.05)
        stop.set()
        reader.join(60)
        every = mgr.events(limit=10_000)
        assert len(every) == 6 * 40 * 3
        assert [e.record_id for e in seen] == [e.record_id for e in every]
